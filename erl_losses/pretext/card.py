"""Model-card drafts (markdown) for the manifest entry a pretext run writes."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["model_card"]


def _stage1_text(r: dict[str, Any], source: dict[str, Any] | None) -> str:
    if source is not None:
        s1 = source.get("recipe") or {}
        text = f"taken from `{source['file']}` (sha256 {source['sha256'][:12]}...)"
        if s1.get("stage1_steps"):
            text += (
                f", trained for {s1['stage1_steps']} steps, batch {s1['stage1_batch_size']}, "
                f"{s1.get('stage1_crop_size') or s1.get('crop_size') or 'work_size'} px crops, "
                f"peak lr {s1['stage1_lr']}, seed {s1['seed']}"
            )
        return text
    crop = r["stage1_crop_size"] or r["crop_size"] or "work_size"
    return (
        f"{r['stage1_steps']} steps, batch {r['stage1_batch_size']}, {crop} px crops, peak lr "
        f"{r['stage1_lr']}"
    )


def _stage2_text(r: dict[str, Any]) -> str:
    from erl_losses.pretext.objectives import get_objective

    objective = get_objective(r["pretext"])
    if not objective.trains_relation:
        return "skipped: `t_e` keeps its seeded random initialisation"
    fuse = (
        "`t_e` and the F'-reading half of `W`"
        if r.get("stage2_fuse", "all") == "relation"
        else "`t_e` and `W`"
    )
    if r["pretext"] == "phase":
        loss = f"phase loss eq. 3 ({r['phase_mode']})"
    elif r["pretext"] == "l1":
        loss = "pixel L1"
    else:
        origin = "" if objective.paper else " -- ours, not the paper's"
        loss = f"`{objective.name}`: {objective.description}{origin}"
    return (
        f"{r['stage2_steps']} steps of {loss}, batch {r['batch_size']}, "
        f"{r['crop_size'] or 'work_size'} px crops, peak lr {r['stage2_lr']}; trains {fuse}, "
        "`f_e`/`f_d` frozen"
    )


def _data_section(data: dict[str, Any]) -> list[str]:
    if data.get("kind") == "bundled-photos":
        return [
            "Random crops of the natural photos that ship inside scikit-image, scikit-learn and "
            "matplotlib: the fixed pretext-train split of `erl_losses.data.photos` "
            f"({', '.join(data.get('photos', []))}). **Not MSEC and not SICE**: a handful of "
            "everyday photos, normal exposure. The held-out photos used below were never seen.",
        ]
    return [f"`{json.dumps(data, sort_keys=True)}`"]


def _metrics_section(m: dict[str, Any]) -> list[str]:
    if not m:
        return ["Not evaluated."]
    held = m.get("held_out", {})
    return [
        f"Crops: {held.get('num_batches')} batches x {held.get('batch_size')} crops of "
        f"{held.get('crop_size')} px from {', '.join(held.get('photos', []))} (seed "
        f"{held.get('seed')}). Baseline: {m.get('baseline', 'random t_e')}.",
        "",
        "| metric | this BCM | random t_e |",
        "|---|---|---|",
        f"| reconstruction PSNR, encoder/decoder (`relation=False`, dB) | {m['recon_psnr_db']} | |",
        f"| reconstruction PSNR through the relation (`relation=True`, dB) | "
        f"{m['recon_psnr_db_relation']} | |",
        f"| phase loss eq. 3 ({m['phase_mode']}, rad) | {m['phase_loss']} | "
        f"{m['phase_loss_random_te']} |",
        f"| pixel L1 of the relation reconstruction | {m['l1']} | {m['l1_random_te']} |",
    ]


_HOW_TO = [
    "## Train one on MSEC or SICE ground truth",
    "",
    "```",
    "erl pretrain --pretext phase --images /data/MSEC/training/GT_IMAGES --max-side 512 \\",
    "    --out runs/bcm-phase-msec --name bcm-phase-msec --threads 8",
    "```",
    "",
    "(SICE: point `--images` at the folder of its ground-truth images.) Then load it with "
    "`SampleRelationLoss.from_pretrained('runs/bcm-phase-msec/bcm-phase-msec-v1.safetensors')`.",
]


def model_card(entry: dict[str, Any]) -> str:
    """A markdown model card for a manifest entry (a draft: edit the prose before publishing)."""
    t = entry.get("training") or {}
    r = entry["recipe"]
    lines = [
        f"# {entry['name']} (version {entry['version']})",
        "",
        f"{entry.get('description', '')}.",
        "",
        "## Training data",
        "",
        *_data_section(entry.get("data") or {}),
        "",
        "## Recipe",
        "",
        f"- pretext: `{r['pretext']}`; seed {r['seed']}; Adam betas {r['betas']}.",
        f"- stage 1 (auto-encoder, L1): {_stage1_text(r, t.get('stage1_from'))}.",
        f"- stage 2 ({r['pretext']}): {_stage2_text(r)}.",
        f"- BCM config: `{json.dumps(entry['config'], sort_keys=True)}`",
        f"- command: `{t.get('command', '?')}`",
        f"- time: {t.get('seconds', '?')} s on {t.get('machine', '?')} "
        f"(torch {t.get('torch', '?')}, erl-losses {t.get('erl_losses', '?')}, {t.get('date', '?')})",
        "",
        "## Measured on held-out photo crops",
        "",
        *_metrics_section(entry.get("metrics") or {}),
        "",
        *_HOW_TO,
        "",
        f"License: {entry.get('license', '?')}.",
        "",
    ]
    return "\n".join(lines)
