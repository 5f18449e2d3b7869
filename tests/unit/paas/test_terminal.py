"""The terminal an SSH client asks for: TERM checked, window size packed as the kernel reads
it, exit statuses as a shell reports them."""

import fcntl
import os
import struct
import termios

import pytest

from shipmate.paas.terminal import DEFAULT_TERM, Terminal, exit_status, term_name, winsize


def test_winsize_is_struct_winsize_rows_first() -> None:
    assert winsize(132, 43, 1056, 688) == struct.pack("HHHH", 43, 132, 1056, 688)
    assert struct.unpack("HHHH", winsize(80, 24)) == (24, 80, 0, 0)


def test_winsize_clamps_and_gives_a_sizeless_client_a_console() -> None:
    assert struct.unpack("HHHH", winsize(0, 0)) == (24, 80, 0, 0)
    assert struct.unpack("HHHH", winsize(100, 0)) == (24, 80, 0, 0)
    assert struct.unpack("HHHH", winsize(2**32 - 1, 70000, -5, 2**20)) == (
        65535, 65535, 0, 65535)


def test_the_kernel_reads_the_packed_size_back() -> None:
    master, slave = os.openpty()
    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, winsize(123, 45))
        assert os.get_terminal_size(slave) == os.terminal_size((123, 45))
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("term", ["xterm-256color", "screen.xterm-256color", "vt220",
                                  "rxvt-unicode+x", "Eterm"])
def test_plain_terminal_names_pass(term: str) -> None:
    assert term_name(term) == term


@pytest.mark.parametrize("term", ["", "-x", "xterm;id", "a b", "x/../y", "x" * 65, "é",
                                  "xterm\n", "$(id)"])
def test_anything_else_becomes_xterm(term: str) -> None:
    assert term_name(term) == DEFAULT_TERM


def test_exit_status_of_a_signal_is_128_plus_it() -> None:
    assert [exit_status(c) for c in (0, 3, 255, 300, -9, -15, -200)] == [
        0, 3, 255, 255, 137, 143, 255]


def test_requested_terminal() -> None:
    assert Terminal.requested("vt100;x", 100, 30) == Terminal("xterm", winsize(100, 30))
