"""Fetching source images over HTTP(S) and S3 under the fetch policy, against a real HTTP server on
127.0.0.1 (allowed explicitly) and moto's S3 endpoint: SSRF refusals, redirects re-checked, size,
type and magic checks, timeouts, transient-only retries, per-host bounds, credentials, and the
ETag/Last-Modified cache that makes a second run download nothing."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from lightbox.errors import SpecError
from lightbox.fetch import FetchError, FetchRefused, SourceFetcher, _address_problem
from lightbox.fetch_policy import FetchPolicy, load_fetch_policy
from tests.support.http_server import ImageServer
from tests.support.images import studio_photo, to_bytes

JPEG = to_bytes(studio_photo(120, 160)[0], "JPEG", quality=90)
PNG = to_bytes(studio_photo(100, 100, seed=1)[0], "PNG")


@pytest.fixture
def server():
    with ImageServer() as s:
        yield s


def policy(tmp_path, **kw) -> FetchPolicy:
    """Loopback explicitly allowed (as the tests must), http enabled, a private cache, no sleeping."""
    base = dict(schemes=["http", "https"], allow_networks=["127.0.0.0/8", "::1/128"], cache_dir=str(tmp_path / "cache"),
                backoff_s=0.0, read_timeout_s=2.0, connect_timeout_s=2.0)
    return FetchPolicy(**{**base, **kw})


def test_fetches_an_allowed_image_and_records_it(server, tmp_path):
    url = server.add("/a.jpg", body=JPEG)
    f = SourceFetcher(policy(tmp_path), run_id="r1")
    assert f.read(url) == JPEG
    assert f.stats.counts["downloaded"] == 1 and f.stats.bytes_downloaded == len(JPEG)
    assert server.requests_to("/a.jpg")[0].headers["user-agent"].startswith("lightbox-fetch/")


def test_loopback_is_refused_unless_allowed(server, tmp_path):
    url = server.add("/a.jpg", body=JPEG)
    f = SourceFetcher(policy(tmp_path, allow_networks=[]))
    with pytest.raises(FetchRefused, match=r"127\.0\.0\.1 is a loopback address"):
        f.read(url)
    assert server.seen == []  # refused before connecting


def test_default_policy_refuses_http_and_remote_catalogs_get_no_files(tmp_path):
    with pytest.raises(FetchRefused, match="scheme 'http' is not allowed"):
        SourceFetcher(FetchPolicy(cache_dir=str(tmp_path))).read("http://example.com/a.jpg")
    assert "file" in FetchPolicy().for_catalog("/data/catalog.csv").schemes
    assert "file" not in FetchPolicy().for_catalog("s3://bucket/catalog.csv").schemes
    remote = SourceFetcher(FetchPolicy(cache_dir=str(tmp_path)).for_catalog("s3://bucket/catalog.csv"))
    with pytest.raises(FetchRefused, match="scheme 'file' is not allowed"):
        remote.read("/etc/passwd")
    explicit = FetchPolicy(schemes=["https"]).for_catalog("/data/catalog.csv")
    assert explicit.schemes == ["https"]  # a policy that names its schemes gets exactly those


@pytest.mark.parametrize(
    "target, why",
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.7/x.jpg", "10.0.0.7 is a private address"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ],
)
def test_redirects_are_checked_again(server, tmp_path, target, why):
    url = server.add("/go.jpg", location=target)
    f = SourceFetcher(policy(tmp_path, allow_networks=["127.0.0.1/32"]))
    with pytest.raises(FetchRefused, match=why):
        f.read(url)
    assert len(server.requests_to("/go.jpg")) == 1


def test_redirect_to_a_host_outside_allow_hosts_is_refused(server, tmp_path):
    server.add("/b.jpg", body=JPEG)
    url = server.add("/go", location=server.url("/b.jpg", host="localhost"))
    f = SourceFetcher(policy(tmp_path, allow_hosts=["127.0.0.1"]))
    with pytest.raises(FetchRefused, match="host 'localhost' is not allowed"):
        f.read(url)
    assert server.requests_to("/b.jpg") == []


def test_an_allowed_redirect_is_followed(server, tmp_path):
    server.add("/b.jpg", body=JPEG)
    url = server.add("/go", location="/b.jpg")
    assert SourceFetcher(policy(tmp_path)).read(url) == JPEG


def test_every_resolved_address_must_pass(monkeypatch, tmp_path):
    """A name resolving to a public and a private address is refused (no second lookup to win)."""
    real = socket.getaddrinfo

    def fake(host, port, *a, **kw):
        if host == "cdn.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]
        return real(host, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(FetchRefused, match="cdn.example.test resolves to 10.1.2.3 is a private address"):
        SourceFetcher(FetchPolicy(cache_dir=str(tmp_path))).read("https://cdn.example.test/a.jpg")


def test_address_classes():
    p = FetchPolicy()
    for addr in ("127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "224.0.0.1", "0.0.0.0",
                 "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "100.64.0.1"):
        assert _address_problem(ipaddress.ip_address(addr), p), addr
    assert _address_problem(ipaddress.ip_address("93.184.216.34"), p) is None
    assert _address_problem(ipaddress.ip_address("10.0.0.1"), FetchPolicy(allow_networks=["10.0.0.0/8"])) is None


def test_too_large_bodies_are_refused(server, tmp_path):
    big = JPEG + b"\0" * 200_000
    declared = server.add("/big.jpg", body=big)
    streamed = server.add("/stream.jpg", body=big, chunked=True)
    f = SourceFetcher(policy(tmp_path, max_bytes=100_000))
    with pytest.raises(FetchRefused, match=r"over the fetch policy's max_bytes \(100000\)"):
        f.read(declared)
    with pytest.raises(FetchRefused, match=r"body is over the fetch policy's max_bytes"):
        f.read(streamed)
    assert f.stats.counts["downloaded"] == 0


def test_wrong_content_type_and_wrong_magic_are_refused(server, tmp_path):
    html = server.add("/page.jpg", body=b"<!DOCTYPE html><html>login</html>", content_type="text/html; charset=utf-8")
    fake = server.add("/fake.jpg", body=b"<!DOCTYPE html><html>soft 404</html>", content_type="image/jpeg")
    f = SourceFetcher(policy(tmp_path))
    with pytest.raises(FetchRefused, match="content type 'text/html' is not an allowed image type"):
        f.read(html)
    with pytest.raises(FetchRefused, match=r"not an image \(no JPEG/PNG") as err:
        f.read(fake)
    assert "DOCTYPE" not in str(err.value)  # the refused body is never quoted


def test_a_slow_server_times_out_and_is_retried_then_reported(server, tmp_path):
    url = server.add("/slow.jpg", body=JPEG, delay_s=1.5)
    f = SourceFetcher(policy(tmp_path, read_timeout_s=0.3, retries=1))
    with pytest.raises(FetchError, match=r"timed out .*gave up after 2 attempts"):
        f.read(url)
    assert f.stats.counts["failed"] == 1


def test_transient_errors_are_retried_but_not_found_is_not(server, tmp_path):
    flaky = server.add("/flaky.jpg", body=JPEG, statuses=[503, 429])
    sleeps: list[float] = []
    f = SourceFetcher(policy(tmp_path, retries=3, backoff_s=0.25), sleep=sleeps.append)
    assert f.read(flaky) == JPEG
    assert [s.status for s in server.requests_to("/flaky.jpg")] == [503, 429, 200]
    assert sleeps == [0.25, 0.5]  # exponential backoff
    with pytest.raises(FileNotFoundError, match="HTTP 404"):
        f.read(server.url("/missing.jpg"))
    assert len(server.requests_to("/missing.jpg")) == 1


def test_etag_cache_second_run_downloads_nothing(server, tmp_path):
    url = server.add("/a.jpg", body=JPEG)
    first = SourceFetcher(policy(tmp_path), run_id="run-1")
    assert first.read(url) == JPEG
    assert first.read(url) == JPEG  # same run: no second request at all
    assert len(server.requests_to("/a.jpg")) == 1

    second = SourceFetcher(policy(tmp_path), run_id="run-2")
    assert second.read(url) == JPEG
    hits = server.requests_to("/a.jpg")
    assert len(hits) == 2 and hits[1].status == 304 and hits[1].body_bytes == 0
    assert hits[1].headers["if-none-match"].startswith('"')
    assert second.stats.counts["not_modified"] == 1 and second.stats.bytes_downloaded == 0

    server.routes["/a.jpg"].body = PNG  # the image changed at the source: a new ETag, downloaded again
    server.routes["/a.jpg"].content_type = "image/png"
    third = SourceFetcher(policy(tmp_path), run_id="run-3")
    assert third.read(url) == PNG and third.stats.counts["downloaded"] == 1


def test_last_modified_revalidation_and_content_dedupe(server, tmp_path):
    a = server.add("/a.jpg", body=JPEG, etag=False, last_modified=True)
    b = server.add("/copy-of-a.jpg", body=JPEG, etag=False, last_modified=True)
    SourceFetcher(policy(tmp_path), run_id="r1").prefetch([a, b])
    f = SourceFetcher(policy(tmp_path), run_id="r2")
    assert f.read(a) == JPEG
    assert server.requests_to("/a.jpg")[-1].status == 304
    assert len(list((tmp_path / "cache" / "sources" / "blobs").iterdir())) == 1  # one copy per content


def test_a_damaged_cache_blob_is_fetched_again(server, tmp_path):
    url = server.add("/a.jpg", body=JPEG)
    SourceFetcher(policy(tmp_path), run_id="r1").read(url)
    (blob,) = (tmp_path / "cache" / "sources" / "blobs").iterdir()
    blob.write_bytes(b"garbage")
    f = SourceFetcher(policy(tmp_path), run_id="r2")
    assert f.read(url) == JPEG
    assert "if-none-match" not in server.requests_to("/a.jpg")[-1].headers


def test_parallel_downloads_are_bounded_per_host(server, tmp_path):
    urls = [server.add(f"/p{i}.jpg", body=JPEG, delay_s=0.2) for i in range(6)]
    f = SourceFetcher(policy(tmp_path, per_host_connections=2, parallel_downloads=6), run_id="r")
    f.prefetch(urls)
    assert all(f.read(u) == JPEG for u in urls)
    assert len(server.seen) == 6  # read() after prefetch did not ask again
    assert server.max_in_flight == 2


def test_credentials_go_to_their_host_only(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CDN_AUTH", "Bearer s3cret")
    server.add("/private.jpg", body=JPEG)
    elsewhere = server.add("/elsewhere.jpg", body=JPEG)
    server.add("/hop", location=server.url("/elsewhere.jpg", host="localhost"))
    f = SourceFetcher(policy(tmp_path, credentials={"127.0.0.1": "CDN_AUTH"}))
    f.read(server.url("/private.jpg"))
    assert server.requests_to("/private.jpg")[0].headers["authorization"] == "Bearer s3cret"
    f.read(server.url("/hop"))
    assert server.requests_to("/hop")[0].headers.get("authorization") == "Bearer s3cret"
    assert "authorization" not in server.requests_to("/elsewhere.jpg")[0].headers  # the redirect's host got none
    assert elsewhere


def test_s3_sources_are_cached_by_etag(s3_bucket, tmp_path):
    import boto3

    from lightbox.storage import storage_options_for

    endpoint = storage_options_for("s3://x")["client_kwargs"]["endpoint_url"]
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.put_object(Bucket=s3_bucket, Key="img/a.jpg", Body=JPEG)
    uri = f"s3://{s3_bucket}/img/a.jpg"
    first = SourceFetcher(FetchPolicy(cache_dir=str(tmp_path)), run_id="1")
    assert first.read(uri) == JPEG and first.stats.counts["s3"] == 1
    second = SourceFetcher(FetchPolicy(cache_dir=str(tmp_path)), run_id="2")
    assert second.read(uri) == JPEG and second.stats.counts["reused"] == 1 and second.stats.bytes_downloaded == 0
    client.put_object(Bucket=s3_bucket, Key="img/a.jpg", Body=PNG)
    third = SourceFetcher(FetchPolicy(cache_dir=str(tmp_path)), run_id="3")
    assert third.read(uri) == PNG and third.stats.counts["s3"] == 1


def test_policy_file_errors_name_the_field(tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text("schemes: [https, gopher]\n")
    with pytest.raises(SpecError, match=r"policy.yaml: schemes.1: .*gopher"):
        load_fetch_policy(str(bad))
    bad.write_text("allow_networks: [localhost]\n")
    with pytest.raises(SpecError, match="'localhost' is not a network"):
        load_fetch_policy(str(bad))
    bad.write_text("max_bytez: 5\n")
    with pytest.raises(SpecError, match="max_bytez: unknown key - did you mean .max_bytes.\?"):
        load_fetch_policy(str(bad))
    good = tmp_path / "ok.yaml"
    good.write_text("schemes: [https]\nallow_hosts: ['*.shopify.com', 'cdn.example.com']\nmax_bytes: 1000000\n")
    assert load_fetch_policy(str(good)).allow_hosts == ["*.shopify.com", "cdn.example.com"]


def test_https_verifies_the_certificate_and_the_host_name(tmp_path):
    """A real TLS server on 127.0.0.1 with a certificate from a throwaway CA: trusted through the
    policy's ca_bundle it is fetched; with certifi's CAs it is refused (not retried); a certificate
    for another name is refused even though the connection goes to a pinned address."""
    from tests.support.http_server import make_tls_files

    ca, cert, key = make_tls_files(tmp_path)
    with ImageServer(tls=(cert, key)) as tls:
        url = tls.add("/a.jpg", body=JPEG)
        by_name = tls.url("/a.jpg", host="localhost")
        trusted = SourceFetcher(policy(tmp_path, schemes=["https"], ca_bundle=ca))
        assert trusted.read(url) == JPEG and trusted.read(by_name) == JPEG
        with pytest.raises(FetchError, match="TLS error"):
            SourceFetcher(policy(tmp_path, schemes=["https"], retries=2)).read(url)
        assert len(tls.requests_to("/a.jpg")) == 2  # the untrusted attempt never got as far as a request
    ca2, cert2, key2 = make_tls_files(tmp_path / "other", names=("cdn.example.com",))
    with ImageServer(tls=(cert2, key2)) as other:  # trusted CA, but a certificate for another name
        url = other.add("/a.jpg", body=JPEG)
        with pytest.raises(FetchError, match="TLS error"):
            SourceFetcher(policy(tmp_path, schemes=["https"], ca_bundle=ca2, retries=0)).read(url)
