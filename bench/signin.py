"""The benches sign in like any API client: an administrator made with
`convutell admin create-user` in the bench's own store, whose API token every
request carries (auth())."""
import os
import subprocess
import tempfile

HEADERS = {}


def sign_in(bin_path, env):
    """Creates the bench's administrator in env's store and keeps their token."""
    fd, path = tempfile.mkstemp(prefix="convutell-bench-token-")
    os.close(fd)
    try:
        subprocess.run([bin_path, "admin", "create-user", "--name", "bench", "--admin",
                        "--exists-ok", "--token-file", path], env=env, check=True,
                       capture_output=True, timeout=120)
        with open(path) as f:
            HEADERS["Authorization"] = "Bearer " + f.read().strip()
    finally:
        os.unlink(path)


def auth(headers=None):
    """headers with the bench's Authorization added."""
    return dict(headers or {}, **HEADERS)
