import os
import threading

import pytest

from lightbox.errors import StorageError
from lightbox.storage import Store, resolve_relative




def test_write_read_copy_list(store):
    store.write_atomic("b/sku/a.jpg", b"abc")
    assert store.read("b/sku/a.jpg") == b"abc" and store.stamp("b/sku/a.jpg")[0] == 3
    store.copy_atomic("b/sku/a.jpg", "b/sku/c.jpg")
    assert store.list("b") == ["b/sku/a.jpg", "b/sku/c.jpg"]
    assert store.key_of(store.uri("b/sku/c.jpg")) == "b/sku/c.jpg"
    store.delete_prefix("b/sku")
    assert store.list("b") == [] and store.stamp("b/sku/a.jpg") is None
    with pytest.raises(FileNotFoundError):
        store.read("b/sku/a.jpg")


def test_local_write_leaves_no_temporary_files_and_readers_never_see_partial_data(tmp_path):
    store = Store(str(tmp_path))
    big_a, big_b = b"a" * 4_000_000, b"b" * 4_000_000
    store.write_atomic("k.bin", big_a)
    seen = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            data = (tmp_path / "k.bin").read_bytes()
            seen.add((len(data), data[:1], data[-1:]))

    t = threading.Thread(target=reader)
    t.start()
    for i in range(20):
        store.write_atomic("k.bin", big_b if i % 2 == 0 else big_a)
    stop.set()
    t.join()
    assert seen <= {(4_000_000, b"a", b"a"), (4_000_000, b"b", b"b")}
    assert sorted(os.listdir(tmp_path)) == [".lightbox-tmp", "k.bin"]  # temporaries live outside live folders
    assert os.listdir(tmp_path / ".lightbox-tmp") == []  # and none is left


def test_output_under_a_file_is_a_storage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match=r"file/out: output is not writable"):
        Store(str(tmp_path / "file" / "out")).check_writable()


def test_missing_bucket_is_a_storage_error(s3_bucket):
    with pytest.raises(StorageError, match="s3://no-such-bucket/x: output is not writable"):
        Store("s3://no-such-bucket/x").check_writable()


@pytest.mark.parametrize(
    "ref, base, expected",
    [
        ("img/a.jpg", "s3://b/feeds/cat.csv", "s3://b/feeds/img/a.jpg"),
        ("../img/a.jpg", "s3://b/feeds/cat.csv", "s3://b/img/a.jpg"),
        ("https://cdn.example.com/a.jpg", "/x/cat.csv", "https://cdn.example.com/a.jpg"),
        ("/abs/a.jpg", "s3://b/cat.csv", "/abs/a.jpg"),
        ("img/a.jpg", "file:///x/y/cat.csv", "/x/y/img/a.jpg"),
    ],
)
def test_resolve_relative(ref, base, expected):
    assert resolve_relative(ref, base) == expected


def test_an_outage_counts_the_time_it_took_not_only_the_backoff_sleeps(tmp_path, monkeypatch):
    """Issue 25, item 14: a storage client that spends its time inside each failing attempt (its own retries, a
    connection timeout) was reported as the backoff sleeps alone ("0.2 s of retries" for a 25 s refusal)."""
    import time

    store = Store(str(tmp_path / "out"))
    real = store.fs.exists
    failing = {"left": 2}

    def slow_refusal(path):  # fsspec's signature
        if failing["left"]:
            failing["left"] -= 1
            time.sleep(1.0)  # the client's own connection attempts, before it gives up
            raise ConnectionRefusedError(111, "Connection refused")
        return real(path)

    monkeypatch.setattr(store.fs, "exists", slow_refusal)
    assert store.exists("nothing-here") is False
    assert store.outage_retries == 2 and store.outage_waited_s >= 2.0  # the sleeps alone are at most 0.5 + 1.0 s


def test_an_endpoint_that_takes_the_connection_and_never_answers_fails_the_probe_in_bounded_time(monkeypatch):
    import socket
    import time

    from lightbox.errors import StorageError

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes the handshakes; nothing ever reads or replies
    try:
        monkeypatch.setenv("LIGHTBOX_S3_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"s3://silent-bucket/x: output is not writable \(the storage endpoint "
                                               r"did not answer within 2 s; check LIGHTBOX_S3_ENDPOINT_URL"):
            Store("s3://silent-bucket/x").check_writable(wait_s=2)
        assert time.monotonic() - started < 30  # bounded (the client alone would wait minutes)
    finally:
        silent.close()
