"""tests/guest/cpio.py — initramfs images (newc cpio, written here so no cpio
tool is needed), for the guests of tests/vm and tests/kernel."""


def cpio_newc(entries, path):
    """entries: [(name, mode, data-bytes-or-None)]."""
    out = bytearray()
    ino = 1

    def pad4(b):
        b.extend(b"\0" * ((4 - len(b) % 4) % 4))

    for name, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        data = data or b""
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08x" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out += hdr.encode() + nb
        pad4(out)
        out += data
        pad4(out)
        ino += 1
    with open(path, "wb") as f:
        f.write(out)

