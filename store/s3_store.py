"""The artifact store on S3-compatible object storage, through boto3.

Objects under ``s3://bucket/prefix``::

    <key>/<file>                   every file of the directory
    <key>/.disc-artifact.tar.gz    versions only: the tar.gz a download redirects to
    <key>/.disc-manifest.json      written last: the commit

The endpoint and credentials come from the standard variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), read by botocore
itself, so any S3-compatible store works unchanged.

boto3 over obstore (``benchmarks/scaling.py``, figures in docs/results/scaling.md): against the
same server obstore's raw puts and gets were faster (it hashes nothing, and it is Rust), but both
move a version in well under a second of its training time, and boto3 is the reference client:
presigned URLs, standard retry modes and S3's per-object SHA-256 checksums are built in, and it
is what the AWS variables are documented for. Transfers are single streams up to 64 MiB parts.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

from store import storage
from store.artifact_store import (
    MANIFEST_NAME,
    Archive,
    ArtifactCorrupt,
    ArtifactMissing,
    ArtifactStore,
    Download,
    Fetched,
    Manifest,
    StoreError,
    StoreUnavailable,
    check_key,
    link_or_copy,
    verify_files,
)
from store.content_cache import ContentCache
from store.settings import Settings

ARCHIVE_NAME = ".disc-artifact.tar.gz"
PART_BYTES = 64 * 1024 * 1024
DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes


def _translate(exc: Exception, what: str) -> Exception:
    """botocore's errors as the store's: unreachable or failing servers are worth a retry."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        HTTPClientError,
        NoCredentialsError,
    )

    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"):
            return StoreUnavailable(f"the artifact store failed to {what}: {code or status}")
        return StoreError(f"the artifact store refused to {what}: {code or status}")
    if isinstance(exc, NoCredentialsError):
        return StoreError(f"no credentials for the artifact store (set AWS_ACCESS_KEY_ID and "
                          f"AWS_SECRET_ACCESS_KEY) to {what}")
    if isinstance(exc, (EndpointConnectionError, ConnectionError, HTTPClientError)):
        return StoreUnavailable(f"the artifact store is unreachable ({type(exc).__name__}) to {what}")
    if isinstance(exc, BotoCoreError):
        return StoreUnavailable(f"the artifact store failed to {what} ({type(exc).__name__})")
    return exc


class _IterReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks, hashing and counting what is read."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._pending = b""
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self.digest.update(self._pending[:count])
        self.size += count
        self._pending = self._pending[count:]
        return count


class S3ArtifactStore(ArtifactStore):
    def __init__(self, *, bucket: str, prefix: str, settings: Settings):
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self.settings = settings
        self._client = None
        self._presigner = None
        self._cache: ContentCache | None = None

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._client = self._make_client(None)
        return self._client

    def _make_client(self, endpoint_url: str | None):
        import boto3
        from botocore.config import Config

        # Standard retries ride out a store restarting for a few seconds; longer outages end
        # the attempt with StoreUnavailable and the job is retried later.
        config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5,
                        read_timeout=60, max_pool_connections=16,
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required")
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=endpoint_url, config=config)

    @property
    def cache(self) -> ContentCache:
        if self._cache is None:
            self._cache = ContentCache(self.settings.cache_dir, self.settings.cache_max_bytes)
        return self._cache

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, what: str, method: str, **kwargs):
        try:
            return getattr(self.client, method)(**kwargs)
        except Exception as exc:
            raise _translate(exc, what) from exc

    def _transfer_config(self):
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES,
                              max_concurrency=4)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (tests and first deployments)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except Exception as exc:
            from botocore.exceptions import ClientError

            if not (isinstance(exc, ClientError)
                    and exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound")):
                raise _translate(exc, f"find bucket {self.bucket}") from exc
        self._call(f"create bucket {self.bucket}", "create_bucket", Bucket=self.bucket)

    def _list(self, prefix: str, what: str) -> list[dict]:
        objects = []
        token = None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(what, "list_objects_v2", **kwargs)
            objects.extend(page.get("Contents", []))
            if not page.get("IsTruncated"):
                return objects
            token = page["NextContinuationToken"]

    def _delete_names(self, names: list[str], what: str) -> None:
        for start in range(0, len(names), DELETE_BATCH):
            batch = names[start:start + DELETE_BATCH]
            self._call(what, "delete_objects", Bucket=self.bucket,
                       Delete={"Objects": [{"Key": n} for n in batch], "Quiet": True})

    # -- directories ---------------------------------------------------------------------------

    def publish(self, source, key, *, download_name=None) -> Manifest:
        source = Path(source)
        base = self._name(key) + "/"
        manifest = Manifest.of_directory(check_key(key), source)
        self.delete(key)  # a half-upload of an earlier attempt, or the key's previous content
        transfer = self._transfer_config()
        for item in manifest.files:
            try:
                self.client.upload_file(str(source / item.path), self.bucket, base + item.path,
                                        ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=transfer)
            except Exception as exc:
                raise _translate(exc, f"upload {key}/{item.path}") from exc
        if download_name is not None:
            reader = _IterReader(storage.iter_tar_gz(source, arcname=download_name))
            try:
                self.client.upload_fileobj(io.BufferedReader(reader, buffer_size=1 << 20), self.bucket,
                                           base + ARCHIVE_NAME, ExtraArgs={"ContentType": "application/gzip"},
                                           Config=transfer)
            except Exception as exc:
                raise _translate(exc, f"upload the archive of {key}") from exc
            manifest = Manifest(key=manifest.key, directory_sha256=manifest.directory_sha256,
                                files=manifest.files,
                                archive=Archive(ARCHIVE_NAME, reader.size, reader.digest.hexdigest()))
        body = manifest.to_json()
        self._call(f"commit {key}", "put_object", Bucket=self.bucket, Key=base + MANIFEST_NAME, Body=body,
                   ContentType="application/json",
                   ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode())
        if download_name is not None:
            # A version is the next job's parent, most often on this same host: keep a copy in
            # the local cache now rather than download it again then.
            self.cache.get(manifest.directory_sha256, lambda staging: _copy_into(source, staging, manifest),
                           count=False).release()
        return manifest

    def read_manifest(self, key) -> Manifest | None:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key) + "/" + MANIFEST_NAME)
            body = response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise _translate(exc, f"read the manifest of {key}") from exc
        except Exception as exc:
            raise _translate(exc, f"read the manifest of {key}") from exc
        return Manifest.from_json(body, key)

    def _committed(self, key: str, expected_sha256: str | None) -> Manifest:
        manifest = self.read_manifest(key)
        if manifest is None:
            raise ArtifactMissing(f"artifact {key} is not in the store (no manifest: never committed)")
        manifest.check_against(expected_sha256)
        return manifest

    def fetch(self, key, *, expected_sha256=None, into=None) -> Fetched:
        manifest = self._committed(key, expected_sha256)
        if into is not None:
            destination = Path(into)
            destination.mkdir(parents=True, exist_ok=True)
            self._download(key, manifest, destination)
            return Fetched(destination, manifest, hit=False)
        entry = self.cache.get(manifest.directory_sha256, lambda staging: self._download(key, manifest, staging))
        return Fetched(entry.path, manifest, hit=entry.hit, release=entry.release)

    def _download(self, key: str, manifest: Manifest, destination: Path) -> None:
        base = self._name(key) + "/"
        for item in manifest.files:
            target = destination / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=base + item.path)["Body"]
                with open(target, "wb") as out:
                    for chunk in body.iter_chunks(storage.CHUNK_BYTES):
                        out.write(chunk)
            except Exception as exc:
                raise _translate(exc, f"download {key}/{item.path}") from exc
        (destination / MANIFEST_NAME).write_bytes(manifest.to_json())
        verify_files(destination, manifest)

    def verify(self, key, expected_sha256) -> Manifest:
        manifest = self._committed(key, expected_sha256)
        base = self._name(key) + "/"
        sizes = {o["Key"][len(base):]: o["Size"] for o in self._list(base, f"list {key}")}
        expected = {f.path: f.size for f in manifest.files}
        if manifest.archive is not None:
            expected[manifest.archive.name] = manifest.archive.size
        wrong = sorted(path for path, size in expected.items() if sizes.get(path) != size)
        if wrong:
            raise ArtifactCorrupt(f"artifact {key}: objects missing or of the wrong size: {', '.join(wrong[:3])}")
        return manifest

    def open_download(self, key, expected_sha256, *, filename) -> Download:
        manifest = self.verify(key, expected_sha256)
        if manifest.archive is None:
            raise ArtifactMissing(f"artifact {key} was stored without a download archive")
        if self._presigner is None:
            endpoint = self.settings.artifact_public_endpoint
            self._presigner = self._make_client(endpoint) if endpoint else self.client
        url = self._presigner.generate_presigned_url(
            "get_object", ExpiresIn=self.settings.artifact_link_ttl_s,
            Params={"Bucket": self.bucket, "Key": self._name(key) + "/" + manifest.archive.name,
                    "ResponseContentDisposition": f'attachment; filename="{filename}.tar.gz"',
                    "ResponseContentType": "application/gzip"})
        return Download(redirect_url=url, archive_sha256=manifest.archive.sha256)

    def delete(self, key) -> None:
        base = self._name(key) + "/"
        self._delete_names([base + MANIFEST_NAME], f"delete {key}")
        names = [o["Key"] for o in self._list(base, f"list {key}")]
        self._delete_names(names, f"delete {key}")

    def list_keys(self, prefix) -> dict[str, bool]:
        base = self.prefix + prefix
        found: dict[str, bool] = {}
        for item in self._list(base, f"list {prefix or 'the store'}"):
            rest = item["Key"][len(base):]
            name, _, inner = rest.partition("/")
            if not inner:
                continue  # a plain value, not a directory's object
            key = prefix + name
            found[key] = found.get(key, False) or inner == MANIFEST_NAME
        return dict(sorted(found.items()))

    # -- small values --------------------------------------------------------------------------

    def put_bytes(self, name, data) -> None:
        self._call(f"write {name}", "put_object", Bucket=self.bucket, Key=self._name(name), Body=data,
                   ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode())

    def get_bytes(self, name) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._name(name))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise _translate(exc, f"read {name}") from exc
        except Exception as exc:
            raise _translate(exc, f"read {name}") from exc

    def list_names(self, prefix) -> list[str]:
        base = self.prefix + prefix
        return sorted(o["Key"][len(self.prefix):] for o in self._list(base, f"list {prefix}")
                      if "/" not in o["Key"][len(base):])


def _copy_into(source: Path, staging: Path, manifest: Manifest) -> None:
    for item in manifest.files:
        (staging / item.path).parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(source / item.path, staging / item.path)
    (staging / MANIFEST_NAME).write_bytes(manifest.to_json())
    verify_files(staging, manifest)
