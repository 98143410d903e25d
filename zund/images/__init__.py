"""Images: the per-node image records behind ``/v1/images`` and where images come
from (the local engine, Glance).

- ``records``: :class:`ImageRecord`, one image pulled or loaded on one node;
- ``interface``: :class:`IImages`, what the API may ask of the images (the seam);
- ``engine``: :class:`IImageEngine`, a node's local image store (Docker, fake);
- ``local``: :class:`LocalImages`, this node's images (records in its store);
- ``cluster``: :class:`ClusterImages`, every node's images from any node;
- ``glance``: the Glance image driver (find, download, verify, load, cache).
"""
