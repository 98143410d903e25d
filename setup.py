from setuptools import find_packages, setup

setup(
    name="zund",
    version="0.1.0",
    description="A Zun-compatible container service with no central control plane.",
    packages=find_packages(include=["zund", "zund.*"]),
    python_requires=">=3.11",
    install_requires=[
        "Twisted>=23.10",
        "klein>=23.5",
        "treq>=23.11",
        "msgpack>=1.0.5",
        "docker>=7.0",
        "cryptography>=41.0",
        "oslo.config>=9.2",
        "oslo.policy>=4.2",
        "attrs>=23.1",
        "jsonschema>=4.17",
        "zope.interface>=6.0",
        "stevedore>=5.0",
        "oslo.utils>=6.0",
    ],
    extras_require={
        "keystone": ["keystonemiddleware>=10.4"],
        "libvirt": ["libvirt-python>=9.0"],
        "test": [
            "pytest>=7.4",
            "pytest-twisted>=1.14",
            "hypothesis>=6.80",
            "python-openstackclient>=6.0",
            "python-zunclient>=5.0",
            "openstacksdk>=1.0",
            "keystonemiddleware>=10.4",
            "fixtures>=4.0",
        ],
    },
    entry_points={
        "console_scripts": ["zund = zund.cmd.main:main"],
        "zund.runtimes": [
            "docker = zund.runtimes.drivers:docker",
            "fake = zund.runtimes.drivers:fake",
            "libvirt = zund.runtimes.drivers:libvirt",
        ],
        "zund.placement.policies": [
            "spread = zund.cluster.policies:SpreadPolicy",
            "binpack = zund.cluster.policies:BinpackPolicy",
        ],
        "oslo.config.opts": ["zund = zund.conf:list_opts"],
        "oslo.policy.policies": ["zund = zund.api.policy:list_rules"],
    },
)
