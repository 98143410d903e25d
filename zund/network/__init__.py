"""Tenant networks for containers (issue 16).

``interface`` is the seam (``INetworkBackend``, ``IPlugger``, ``Network``, ``Port``);
``errors`` the domain errors; ``vxlan`` the kernel-only backend; ``plugger`` wires
ports into Docker containers (sandbox-namespace model); ``neutron`` the Neutron
backend.
"""
