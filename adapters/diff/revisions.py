"""Reading a ruleset as it was at a git revision (`REV:PATH`)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath


class RevisionError(Exception):
    """A ruleset named by git revision that cannot be read. Says why."""


def split_revision(spec: str) -> tuple[str, str] | None:
    """`"HEAD~1:rulesets/varejo"` -> `("HEAD~1", "rulesets/varejo")`.

    A spec that exists on disk is a path even when it holds a colon; so is
    one without a colon. Anything else is `REV:PATH`, with PATH read as git
    reads it: from the top of the repository, or from the current directory
    when it starts with `./`.
    """
    if Path(spec).exists() or ":" not in spec:
        return None
    revision, _, path = spec.partition(":")
    if not revision or not path:
        return None
    return revision, path


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, check=False, timeout=120
        )
    except FileNotFoundError as exc:
        raise RevisionError(
            "git is not installed, so a revision cannot be read"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise RevisionError(f"git {args[0]} did not finish in 120 s") from exc


def _git_message(result: subprocess.CompletedProcess[bytes]) -> str:
    text = result.stderr.decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else f"git exited with {result.returncode}"


def export_revision(spec: str, destination: Path, *, cwd: Path | None = None) -> Path:
    """Write the ruleset `REV:PATH` names into `destination`; return its path.

    A folder is exported whole (`git archive` of its tree), a single-file
    ruleset as that one file. Raises RevisionError outside a git repository,
    for an unknown revision, or for a path the revision does not hold.
    """
    parts = split_revision(spec)
    if parts is None:
        raise RevisionError(f"{spec!r} is neither a path nor REV:PATH")
    revision, path = parts
    here = cwd or Path.cwd()

    top = _git(["rev-parse", "--show-toplevel"], here)
    if top.returncode != 0:
        raise RevisionError(
            f"{spec!r} names a git revision, but {here} is not inside a git"
            f" repository ({_git_message(top)})"
        )
    toplevel = Path(top.stdout.decode().strip())
    if _git(
        ["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], here
    ).returncode:
        raise RevisionError(f"{spec!r}: git knows no revision {revision!r}")

    found = _git(["rev-parse", "--verify", "--quiet", f"{revision}:{path}"], here)
    if found.returncode != 0:
        raise RevisionError(
            f"{spec!r}: revision {revision} has no {path!r} (PATH is read from"
            " the top of the repository; start it with ./ for the current folder)"
        )
    oid = found.stdout.decode().strip()
    kind = _git(["cat-file", "-t", oid], here).stdout.decode().strip()
    name = Path(path).name or "ruleset"
    target = destination / name

    if kind == "blob":
        content = _git(["cat-file", "blob", oid], here)
        target.write_bytes(content.stdout)
        return target
    if kind != "tree":
        raise RevisionError(f"{spec!r} is a git {kind}, not a file or folder")
    # `git archive` restricts itself to the current folder when run below the
    # top of the repository, so it runs at the top.
    archive = _git(["archive", "--format=tar", oid], toplevel)
    if archive.returncode != 0:
        raise RevisionError(f"{spec!r}: {_git_message(archive)}")
    target.mkdir()
    _unpack(archive.stdout, target, spec)
    return target


def _unpack(archive: bytes, target: Path, spec: str) -> None:
    """Write the folders and files of a tar archive below `target`.

    Only plain files and folders are written, each checked to stay inside
    `target`; a policy folder has no use for links or devices.
    """
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            relative = PurePosixPath(member.name)
            if relative.is_absolute() or ".." in relative.parts:
                raise RevisionError(f"{spec!r}: unsafe path {member.name!r} in git")
            path = target.joinpath(*relative.parts)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                content = tar.extractfile(member)
                assert content is not None  # a regular file has content
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content.read())
            else:
                raise RevisionError(
                    f"{spec!r}: {member.name} is a link or special file;"
                    " only files and folders can be compared"
                )


@contextmanager
def resolved_ruleset(spec: str) -> Iterator[Path]:
    """The ruleset path for `spec`: itself, or a temporary export of REV:PATH."""
    if split_revision(spec) is None:
        yield Path(spec)
        return
    workdir = Path(tempfile.mkdtemp(prefix="ruleset-diff-"))
    try:
        yield export_revision(spec, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
