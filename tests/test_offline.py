"""Nothing touches the network at run time: every loader runs with sockets refused and the hub set offline."""
import socket

import pytest

from tinyml_lib import checkpoints, data


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_socket_guard_works(no_network):
    with pytest.raises(OSError, match="network access attempted"):
        socket.create_connection(("127.0.0.1", 9))


def test_every_loader_offline(no_network):
    data.load_fashion_mnist("test", subset=100)
    data.load_digits_split("val")
    data.CharTokenizer().encode(data.austen_text("test")[:100])
    data.train_bpe.__wrapped__(512)  # train afresh, not from the in-process cache
    data.make_moving_clips(4)
    data.make_point_clouds(2, n_points=64)
    for name in checkpoints.CHECKPOINTS:
        checkpoints.load_checkpoint(name)
    checkpoints.load_gpt()
