"""Writes to OUTPUT the functions on the code pages a running `jarvis` runs (scripts/order-supervise).

Usage: touched-functions.py BINARY MAP OUTPUT PID SECONDS
       touched-functions.py --listed MAP ORDER   (how many of ORDER's functions MAP's build has)

Pages out the process's code and drops the binary's page cache, so that each page it runs afterwards is read
back alone (the supervisor asks for no read-ahead, and the kernel's fault-around maps only pages already
cached); after SECONDS, the pages present are those it ran. MAP is the linker's map of BINARY
(JARVIS_LINK_MAP, runtime/build.rs): each function's section, address and size. Needs root (paging out
another process's memory takes CAP_SYS_NICE).
"""
import bisect
import ctypes
import os
import re
import subprocess
import sys
import time

SYS_PIDFD_OPEN, SYS_PROCESS_MADVISE, MADV_PAGEOUT, PAGE = 434, 440, 21, 4096


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def code_mapping(pid, binary):
    for line in open(f"/proc/{pid}/maps"):
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "r-xp" and os.path.realpath(fields[5]) == binary:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            return start, end, int(fields[2], 16)
    sys.exit(f"touched-functions: process {pid} maps no code of {binary}")


def page_out(pid, start, end, binary):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    vector = IoVec(start, end - start)
    if pidfd < 0 or libc.syscall(SYS_PROCESS_MADVISE, pidfd, ctypes.byref(vector), 1, MADV_PAGEOUT, 0) < 0:
        sys.exit(f"touched-functions: cannot page out process {pid}: {os.strerror(ctypes.get_errno())}")
    fd = os.open(binary, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def present_pages(pid, start, end):
    pages = (end - start) // PAGE
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        pagemap.seek(start // PAGE * 8)
        raw = pagemap.read(pages * 8)
    return [i for i in range(pages) if int.from_bytes(raw[i * 8:i * 8 + 8], "little") >> 63]


def code_segment(binary):
    """(file offset, address) of the executable LOAD segment."""
    headers = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    for line in headers.splitlines():
        fields = line.split()
        if fields[:1] == ["LOAD"] and "E" in fields[6:-1]:
            return int(fields[1], 16), int(fields[2], 16)
    sys.exit(f"touched-functions: {binary} has no executable segment")


# An input section of a function: `VMA LMA SIZE ALIGN FILE:(.text.NAME)`.
SECTION = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S.*:\(\.text\.(?:unlikely\.|hot\.|startup\.)?(.+)\)$")


def functions(map_file):
    found = []
    for line in open(map_file, errors="replace"):
        match = SECTION.match(line)
        if match and int(match[2], 16):
            found.append((int(match[1], 16), int(match[2], 16), match[3]))
    found.sort()
    return found


def listed(map_file, order_file):
    names = {name for _, _, name in functions(map_file)}
    order = [line.strip() for line in open(order_file) if line.strip() and not line.startswith("#")]
    found = sum(name in names for name in order)
    print(f"{order_file}: {found} of its {len(order)} functions are in this build ({found * 100 // max(len(order), 1)} %)")


def main():
    if sys.argv[1] == "--listed":
        listed(sys.argv[2], sys.argv[3])
        return
    binary, map_file, output = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3]
    pid, seconds = int(sys.argv[4]), float(sys.argv[5])
    start, end, offset = code_mapping(pid, binary)
    page_out(pid, start, end, binary)
    time.sleep(seconds)
    segment_offset, segment_address = code_segment(binary)
    known = functions(map_file)
    starts = [f[0] for f in known]
    touched = set()
    pages = present_pages(pid, start, end)
    for page in pages:
        low = segment_address + offset + page * PAGE - segment_offset
        index = max(bisect.bisect_right(starts, low) - 1, 0)
        while index < len(known) and known[index][0] < low + PAGE:
            address, size, name = known[index]
            if address + size > low:
                touched.add(name)
            index += 1
    print(f"touched-functions: {len(pages)} pages ({len(pages) * PAGE >> 10} KiB) run, {len(touched)} functions",
          file=sys.stderr)
    with open(output, "w") as out:
        out.write("".join(f"{name}\n" for name in sorted(touched)))


main()
