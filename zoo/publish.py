"""``erl zoo publish NAME --repo OWNER/REPO``: a zoo entry as a Hugging Face Hub model repo.

:func:`prepare_folder` writes an upload-ready folder: the verified weights file, ``README.md``
(the entry's model card under the Hub's YAML front matter: license, library, tags) and
``<name>.manifest.json``, the manifest entry with an ``hf://OWNER/REPO/FILE@REVISION`` source
first in its ``urls``. The files are staged in a fresh folder and moved into ``out``, which must
be empty or new unless ``overwrite`` (files of other names in it are never touched). :func:`upload`
sends exactly those three files (``allow_patterns``) with ``huggingface_hub.upload_folder`` when
credentials are present (``HF_TOKEN`` or ``hf auth login``), to a repo created private unless
``public``, and pins the entry's ``hf://`` URL to the commit it created; without credentials it
says how to upload by hand. Paste the printed
entry into ``zoo/manifest.json`` to make the zoo download from the Hub.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erl_losses._extras import install_hint
from erl_losses.zoo.checks import HubFile, check_card_path, check_license, check_repo_id
from erl_losses.zoo.errors import PublishError
from erl_losses.zoo.specs import MANIFEST, WeightSpec
from erl_losses.zoo.store import Zoo

__all__ = ["PublishFolder", "add_arguments", "model_card", "prepare_folder", "upload"]

TAGS = ("exposure-correction", "image-enhancement", "erl", "pytorch", "safetensors")


@dataclass(frozen=True)
class PublishFolder:
    """What :func:`prepare_folder` wrote.

    Attributes:
        folder: the upload-ready folder.
        weights: the weights file inside it (sha256-verified against the manifest).
        card: its ``README.md``.
        entry_path: the ``<name>.manifest.json`` file.
        entry: the manifest entry, with the ``hf://`` source first in ``urls``.
    """

    folder: Path
    weights: Path
    card: Path
    entry_path: Path
    entry: dict[str, Any]

    @property
    def files(self) -> list[str]:
        """The names of the files written (and the only ones uploaded)."""
        return [p.name for p in (self.weights, self.card, self.entry_path)]


def model_card(spec: WeightSpec, source: HubFile, body: str) -> str:
    """The Hub's ``README.md``: YAML front matter, then usage and the zoo card ``body``."""
    front = [
        "---",
        f"license: {check_license(spec.license).lower()}",
        "library_name: erl-losses",
        "tags:",
        *[f"- {tag}" for tag in TAGS],
        "---",
        "",
    ]
    usage = (
        f"Batch-correlation module `{spec.name}` (version {spec.version}) for the sample-relation "
        "loss of ERL (Huang et al., *Learning Sample Relationship for Exposure Correction*, "
        "CVPR 2023), as packaged by erl-losses. File `"
        f"{spec.file}`, sha256 `{spec.sha256}` ({spec.size} bytes).\n\n"
        "```python\n"
        "from erl_losses import SampleRelationLoss\n\n"
        f'relation = SampleRelationLoss.from_pretrained("{spec.name}")  # verified download\n'
        "```\n\n"
        f"Zoo source: `{source.url}`. The numbers below were measured by erl-losses, not taken "
        "from the paper.\n\n"
    )
    return "\n".join(front) + usage + body.strip() + "\n"


def prepare_folder(
    name: str,
    repo: str,
    out: str | Path,
    *,
    revision: str = "main",
    zoo: Zoo | None = None,
    overwrite: bool = False,
) -> PublishFolder:
    """Writes the upload-ready folder of zoo entry ``name`` for Hub repo ``repo`` into ``out``.

    Args:
        name: a zoo name.
        repo: ``OWNER/REPO`` on the Hub.
        out: the folder to write: new or empty (created), or with ``overwrite`` one whose files
            of the three names are replaced (other files stay, and are not uploaded).
        revision: the revision the entry's ``hf://`` URL names until an upload pins a commit.
        zoo: the zoo to read from (default: the shipped one).
        overwrite: accept a non-empty ``out``.

    Raises:
        ValueError: a bad ``repo``, ``revision`` or card path, or a non-empty ``out`` without
            ``overwrite``.
    """
    zoo = zoo or Zoo()
    spec = zoo.spec(name)
    source = HubFile(check_repo_id(repo), spec.file, revision)
    folder = Path(out)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not overwrite)):
        raise ValueError(
            f"Expected `out` to be a new or empty folder (or pass --overwrite), got {str(folder)!r}"
        )
    weights_src = zoo.fetch(name)  # verified: a damaged file is never published
    entry = spec.to_dict()
    entry["urls"] = [source.url, *[u for u in spec.urls if not u.startswith("hf://")]]
    WeightSpec.from_dict(entry)  # the entry must stay a valid manifest entry
    texts = {
        "README.md": model_card(spec, source, _card_body(spec)),
        f"{spec.name}.manifest.json": json.dumps(entry, indent=2) + "\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".publish-", dir=folder))
    try:
        shutil.copyfile(weights_src, stage / spec.file)
        for file_name, text in texts.items():
            (stage / file_name).write_text(text, encoding="utf-8")
        for staged in stage.iterdir():
            os.replace(staged, folder / staged.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return PublishFolder(
        folder, folder / spec.file, folder / "README.md", folder / f"{spec.name}.manifest.json", entry
    )


def _card_body(spec: WeightSpec) -> str:
    """The zoo card of ``spec`` (a checked relative path inside the zoo folder), else its
    description."""
    if not spec.card:
        return spec.description
    root = MANIFEST.parent.resolve()
    path = (root / check_card_path(spec.card)).resolve()
    if root not in path.parents or not path.is_file():
        return spec.description
    return path.read_text(encoding="utf-8") or spec.description


def upload(
    prepared: PublishFolder, repo: str, *, token: str | None = None, public: bool = False
) -> str | None:
    """Uploads the files of ``prepared`` to ``repo`` if credentials are present; returns the
    commit id.

    The repo is created private unless ``public`` (an existing repo keeps its visibility); only
    :attr:`PublishFolder.files` are sent. With an upload the entry's ``hf://`` URL is pinned to
    that commit (file rewritten). Returns ``None`` (nothing sent) when no token is configured.

    Raises:
        PublishError: the Hub could not be reached or refused the upload.
    """
    try:
        import huggingface_hub as hub
    except ImportError as err:
        raise ImportError(f"Uploading needs huggingface_hub: {install_hint('hub')}") from err
    token = token or hub.get_token()
    if not token:
        return None
    check_repo_id(repo)
    try:
        hub.create_repo(repo, token=token, exist_ok=True, private=not public)
        info = hub.upload_folder(
            repo_id=repo,
            folder_path=str(prepared.folder),
            allow_patterns=prepared.files,
            commit_message=f"erl-losses zoo: {prepared.entry['name']} v{prepared.entry['version']}",
            token=token,
        )
    except Exception as err:  # huggingface_hub's HTTP errors, httpx/requests connection errors
        first_line = (str(err).strip().splitlines() or [""])[0]
        raise PublishError(
            f"Could not upload to the Hub repo {repo!r}: {type(err).__name__}: {first_line} "
            f"(the folder {str(prepared.folder)!r} is ready; retry, or upload it by hand)"
        ) from err
    commit = str(info.oid)
    pinned = HubFile(repo, prepared.entry["file"], commit).url
    prepared.entry["urls"][0] = pinned
    prepared.entry_path.write_text(json.dumps(prepared.entry, indent=2) + "\n", encoding="utf-8")
    return commit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``erl zoo publish``."""
    parser.add_argument("name", help="zoo name of the BCM to publish")
    parser.add_argument("--repo", required=True, metavar="OWNER/REPO", help="Hub model repo")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder to write (default: ./hub-<name>)"
    )
    parser.add_argument("--revision", default="main", help="revision named in the hf:// URL")
    parser.add_argument(
        "--no-upload", action="store_true", help="only write the folder, even with credentials"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --out folder"
    )
    parser.add_argument(
        "--public", action="store_true", help="create the Hub repo public (default: private)"
    )


def run(args: argparse.Namespace) -> int:
    """``erl zoo publish``: writes the folder, uploads it when credentials are present."""
    prepared = prepare_folder(
        args.name,
        args.repo,
        args.out or Path(f"hub-{args.name}"),
        revision=args.revision,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {prepared.folder}: {prepared.weights.name}, README.md, {prepared.entry_path.name}"
    )
    commit = None if args.no_upload else upload(prepared, args.repo, public=args.public)
    if commit:
        print(f"uploaded to https://huggingface.co/{args.repo} (commit {commit})")
    else:
        reason = "--no-upload" if args.no_upload else "no Hugging Face credentials (HF_TOKEN)"
        print(
            f"not uploaded ({reason}); upload with: "
            f"hf upload {args.repo} {prepared.folder} . --repo-type model"
            + "".join(f" --include {name}" for name in prepared.files)
            + ("" if args.public else " --private")
        )
    print(f"manifest entry (add to zoo/manifest.json):\n{json.dumps(prepared.entry, indent=2)}")
    return 0
