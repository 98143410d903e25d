"""SWIM + Lifeguard cluster membership (a Python memberlist).

Layout, one concept per module (like hashicorp/memberlist):

- ``config``     frozen ``GossipConfig`` plus the ``lan``/``local``/``wan`` presets
- ``member``     member states and the read-only ``MemberView``
- ``awareness``  Lifeguard local health multiplier
- ``suspicion``  Lifeguard dynamic suspicion timeout + confirmations
- ``broadcast``  transmit-limited piggyback queue
- ``codec``      wire messages, versioned envelope, compound packing
- ``keyring``    AES-GCM keyring (primary key encrypts, all keys decrypt)
- ``state``      the pure SWIM state machine ``Membership`` (events in, effects out)
- ``transport``  ``IPacketTransport`` + UDP/TCP implementation
- ``memnet``     in-memory network on a ``task.Clock`` for simulations
- ``service``    ``GossipService``: the thin Twisted shell around ``Membership``
- ``sim``        helpers that build simulated clusters (tests, bench)
- ``runner``     ``python -m zund.gossip.runner``: one node + a localhost control port

The package knows nothing of containers: each node carries an opaque,
size-bounded metadata blob plus a version.
"""
