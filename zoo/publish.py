"""``erl zoo publish NAME --repo OWNER/REPO``: a zoo entry as a Hugging Face Hub model repo.

:func:`prepare_folder` writes an upload-ready folder: the verified weights file, ``README.md``
(the entry's model card under the Hub's YAML front matter: license, library, tags) and
``<name>.manifest.json``, the manifest entry with an ``hf://OWNER/REPO/FILE@REVISION`` source
first in its ``urls``. :func:`upload_folder` sends it with ``huggingface_hub.upload_folder`` when
credentials are present (``HF_TOKEN`` or ``hf auth login``) and pins the entry's ``hf://`` URL to
the commit it created; without credentials it says how to upload by hand. Paste the printed
entry into ``zoo/manifest.json`` to make the zoo download from the Hub.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erl_losses._extras import install_hint
from erl_losses.zoo.sources import HubFile
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


def _check_repo(repo: str) -> str:
    owner, sep, name = repo.partition("/")
    if not sep or not owner or not name or "/" in name or "@" in repo:
        raise ValueError(f"Expected `repo` as OWNER/REPO, got {repo!r}")
    return repo


def model_card(spec: WeightSpec, source: HubFile, body: str) -> str:
    """The Hub's ``README.md``: YAML front matter, then usage and the zoo card ``body``."""
    front = [
        "---",
        f"license: {spec.license.lower()}",
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
    name: str, repo: str, out: str | Path, *, revision: str = "main", zoo: Zoo | None = None
) -> PublishFolder:
    """Writes the upload-ready folder of zoo entry ``name`` for Hub repo ``repo`` into ``out``.

    Args:
        name: a zoo name.
        repo: ``OWNER/REPO`` on the Hub.
        out: the folder to write (created; files of the same names are replaced).
        revision: the revision the entry's ``hf://`` URL names until an upload pins a commit.
        zoo: the zoo to read from (default: the shipped one).
    """
    zoo = zoo or Zoo()
    spec = zoo.spec(name)
    weights_src = zoo.fetch(name)  # verified: a damaged file is never published
    source = HubFile(_check_repo(repo), spec.file, revision)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / spec.file
    shutil.copyfile(weights_src, weights)
    card_src = (MANIFEST.parent / spec.card) if spec.card else None
    body = card_src.read_text(encoding="utf-8") if card_src and card_src.is_file() else ""
    card = folder / "README.md"
    card.write_text(model_card(spec, source, body or spec.description), encoding="utf-8")
    entry = spec.to_dict()
    entry["urls"] = [source.url, *[u for u in spec.urls if not u.startswith("hf://")]]
    WeightSpec.from_dict(entry)  # the entry must stay a valid manifest entry
    entry_path = folder / f"{spec.name}.manifest.json"
    entry_path.write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
    return PublishFolder(folder, weights, card, entry_path, entry)


def upload(prepared: PublishFolder, repo: str, *, token: str | None = None) -> str | None:
    """Uploads ``prepared`` to ``repo`` if credentials are present; returns the commit id.

    With an upload the entry's ``hf://`` URL is pinned to that commit (file rewritten). Returns
    ``None`` (nothing sent) when no token is configured.
    """
    try:
        import huggingface_hub as hub
    except ImportError as err:
        raise ImportError(f"Uploading needs huggingface_hub: {install_hint('hub')}") from err
    token = token or hub.get_token()
    if not token:
        return None
    hub.create_repo(repo, token=token, exist_ok=True)
    info = hub.upload_folder(
        repo_id=repo,
        folder_path=str(prepared.folder),
        commit_message=f"erl-losses zoo: {prepared.entry['name']} v{prepared.entry['version']}",
        token=token,
    )
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


def run(args: argparse.Namespace) -> int:
    """``erl zoo publish``: writes the folder, uploads it when credentials are present."""
    prepared = prepare_folder(
        args.name, args.repo, args.out or Path(f"hub-{args.name}"), revision=args.revision
    )
    print(
        f"wrote {prepared.folder}: {prepared.weights.name}, README.md, {prepared.entry_path.name}"
    )
    commit = None if args.no_upload else upload(prepared, args.repo)
    if commit:
        print(f"uploaded to https://huggingface.co/{args.repo} (commit {commit})")
    else:
        reason = "--no-upload" if args.no_upload else "no Hugging Face credentials (HF_TOKEN)"
        print(
            f"not uploaded ({reason}); upload with: "
            f"hf upload {args.repo} {prepared.folder} . --repo-type model"
        )
    print(f"manifest entry (add to zoo/manifest.json):\n{json.dumps(prepared.entry, indent=2)}")
    return 0
