"""The figures of an evaluation: the weight-grid plot (Figure 7) and the samples sheet."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from pmg.behaviours.schema import load_user

__all__ = ["weight_grid_plot", "samples_sheet"]


def weight_grid_plot(rows: list[dict], path: Path) -> None:
    """Mean d_p, d_t and z per weighting (rows of ``weight_grid.csv``) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["w_p:w_t"] for r in rows]
    fig, ax1 = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax1.plot(labels, [r["d_p"] for r in rows], "o-", label="d_p (preference)")
    ax1.plot(labels, [r["d_t"] for r in rows], "s-", label="d_t (accuracy)")
    ax1.set_xlabel("w_p : w_t")
    ax1.set_ylabel("cosine similarity")
    ax2 = ax1.twinx()
    ax2.plot(labels, [r["z"] for r in rows], "^--", color="tab:green", label="z")
    ax2.set_ylabel("z = a log d_p + (1-a) log d_t")
    lines = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax1.legend(lines, [ln.get_label() for ln in lines], loc="best", fontsize=8)
    ax1.set_title("Weight grid: mean scores over users")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def samples_sheet(records: list[dict], bench: Path, path: Path, about: tuple[str, ...] = (), n_users: int = 8,
                  cell: int = 64) -> None:
    """A row per user: recent history images, the real target, each variant's chosen image; under it the
    user's id and the ground-truth fields named in ``about`` (a benchmark's ``about``)."""
    from pmg.io.output import font

    users = list(dict.fromkeys(r["user_id"] for r in records))[:n_users]
    variants = list(dict.fromkeys(r["variant"] for r in records))
    n_hist = 6
    cols = n_hist + 1 + len(variants)
    head = 34
    sheet = Image.new("RGB", (cols * (cell + 4) + 8, head + len(users) * (cell + 18)), "white")
    d = ImageDraw.Draw(sheet)
    f = font(11)
    titles = ["history"] + [""] * (n_hist - 1) + ["target"] + variants
    for j, t in enumerate(titles):
        d.text((4 + j * (cell + 4), 4), t[:12], fill="black", font=f)
    for i, uid in enumerate(users):
        y = head + i * (cell + 18)
        user = load_user(bench / "users" / f"{uid}.json")
        rec = {r["variant"]: r for r in records if r["user_id"] == uid}
        first = next(iter(rec.values()))
        for j, h in enumerate(user.recent().history[-n_hist:]):
            sheet.paste(Image.open(h.image).convert("RGB").resize((cell, cell)), (4 + j * (cell + 4), y))
        sheet.paste(Image.open(bench / first["target_image"]).convert("RGB").resize((cell, cell)), (4 + n_hist * (cell + 4), y))
        for k, v in enumerate(variants):
            if v in rec:
                sheet.paste(rec[v]["_image"].resize((cell, cell), Image.LANCZOS), (4 + (n_hist + 1 + k) * (cell + 4), y))
        label = ", ".join(str(first[k]) for k in about if k in first)
        d.text((4, y + cell + 2), f"{uid}: {label}" if label else uid, fill=(80, 80, 80), font=f)
    sheet.save(path)
