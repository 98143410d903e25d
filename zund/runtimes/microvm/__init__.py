"""Helpers of the libvirt micro-VM runtime: cpio writer, initramfs builder, domain XML, guest init."""
