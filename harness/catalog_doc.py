"""Render the claims catalog, ``docs/claims.md``, from :mod:`harness.catalog` and the data below.

:mod:`harness.catalog` holds each tested claim's statement, source, thresholds and decision; this
module holds the rest of the catalog as data: the sources, the notation, the metric definitions,
the subspace samplers with their official scales, the model curves of the diversity plane, the
α-trimming definition, the catalog's suggested decisions and the claims tested outside
``claims/`` (P1, P2). :func:`render` is a pure function of those; the committed document must
equal its output (``tests/test_catalog_doc.py``)::

    python -m harness.catalog_doc           # rewrite docs/claims.md
    python -m harness.catalog_doc --check   # exit 1 if docs/claims.md is stale

Each threshold's provenance is the ``#:`` comment above its constant in ``harness/catalog.py``
(:func:`threshold_provenance`), so that it is written once, beside the value.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import catalog
from harness.catalog import CATALOG, THRESHOLDS

__all__ = ["DOC_PATH", "FAMILIES", "METRICS", "SOURCES", "SUGGESTED", "REGENERATE", "claim_tests", "main",
           "render", "threshold_provenance"]

ROOT = Path(__file__).resolve().parents[1]
DOC_PATH = ROOT / "docs" / "claims.md"
CATALOG_PATH = ROOT / "harness" / "catalog.py"
CLAIMS_DIR = ROOT / "claims"
REGENERATE = "python -m harness.catalog_doc"

# ----------------------------------------------------------------------------------------------
# The catalog's text that harness.catalog does not hold.

SOURCES: tuple[tuple[str, str], ...] = (
    ("Fort", 'Fort, Hu, Lakshminarayanan, "Deep Ensembles: A Loss Landscape Perspective", arXiv 1912.02757. '
             "Official code: google-deepmind/deepmind-research, "
             "`ensemble_loss_landscape/cifar10_medium_cnn_experiments.ipynb`."),
    ("WB", 'Paul & Thakur, W&B report "Understanding the Effectivity of Ensembles in Deep Learning" '
           "(code: ayulockin/LossLandscape)."),
    ("Banerjee", "Banerjee, Marrinan, Cannon, Chiang, Sarwate: arXiv 2310.00541 and 2406.08307 (α-trimming level; "
                 "code: Sinjini77/RobustKSTest). The first catalog called them [Trim]."),
    ("GDE", "Jiang, Nagarajan, Baek, Kolter, ICLR 2022 (disagreement ≈ test error across seeds)."),
    ("ReBasin", 'Ainsworth, Hayase, Srinivasa, "Git Re-Basin", ICLR 2023 (weight matching).'),
    ("HD19", 'Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and '
             'Perturbations", ICLR 2019 (CIFAR-10-C; the per-severity constants of hendrycks/robustness, '
             "`ImageNet-C/create_c/make_cifar_c.py`, are `harness.corruptions.SEVERITIES`)."),
)
"""(key, reference): every ``[key]`` that the catalog cites. ``[Trim]`` is an older name of ``[Banerjee]``."""

SOURCE_ALIASES = {"Trim": "Banerjee"}

INTRO = """\
What the harness tests. Each claim has an ID (used in test markers, the report and issues), its
source, the statement, what the source measured (reference numbers), the decision the catalog
first suggested, and the decision the harness makes, with its thresholds and where it departs
from the source. What is fixed: one decision per claim per setting over all seeds, thresholds as
named constants whose comment gives their provenance (paper number, principled null, scale-down),
and a negative control that shows the decision can fail. Every decision is three-valued:
`reproduces` (every criterion's interval clears its threshold), `refuted` (some interval lies
wholly on the wrong side) or `inconclusive`; a claim that does not reproduce in a setting is
declared in `harness/findings.py`, never met by a loosened threshold."""

NOTATION = """\
A setting = dataset + model + recipe. S runs (seeds) s; checkpoints θ_{s,e} at the end of epoch
e = 0..E (e = 0 is the initialisation); p_{s,e} = softmax outputs on the evaluation split;
acc = accuracy; d(f, g) = fraction of evaluation points whose argmax differs;
cos(θ, φ) = θ·φ / (‖θ‖‖φ‖) over the flattened conv/dense weights (biases and normalisation
parameters excluded by default, as in [WB]; "all parameters" recorded too, since [Fort] included
biases, and BN gammas inflate cosine, e.g. ≈0.2 for the [WB] ResNet)."""

METRICS: tuple[tuple[str, str], ...] = (
    ("Brier score", "per example Σ_c (p_c − 1[c = y])² = Σ_c p_c² − 2 p_y + 1, averaged over examples "
                    "(the official code; not divided by C)."),
    ("NLL", "mean of −log p_y."),
    ("ECE", "15 equal-width confidence bins over (0, 1], Σ_b (|B|/N)·|acc_B − conf_B|."),
    ('"Jensen–Shannon" ensemble diversity', "(official code) H(mean_m p_m) − mean_m H(p_m), natural log, averaged "
                                            "over examples (this is the mutual information, not the pairwise JS "
                                            "divergence)."),
    ("Normalised diversity", "d(f, f_ref) / (1 − acc(f)), the sample's own error rate (official code)."),
    ("Linear CKA", "‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on column-centred X, Y (Kornblith et al. 2019)."),
    ("Error Jaccard", "|E_a ∩ E_b| / |E_a ∪ E_b| over the sets of misclassified examples."),
)
"""(name, definition) as the sources compute them; ``harness.metrics`` implements them."""

SAMPLERS = """\
Samplers, from the official code: random direction θ* + t·v, v uniform on the unit sphere; dropout
on the flattened weight vector (mask Bernoulli(1−p), rescaled by 1/(1−p)); diagonal Gaussian fitted
to the last checkpoints of a run (official: epochs 30–39 of 40); low-rank Gaussian (PCA of the same
checkpoints, rank 5; the paper's legend says rank 4); weight averaging (WA) of those checkpoints.

Official scales: ensembles use t = 10·U(0,1) with an accuracy filter, diag scale 1, PCA scale 1,
30 samples per run; the diversity plane uses t = 70·U(0,1), p = 0.1·U(0,1), diag 10·U(0,1),
PCA scale 6, 50 samples, to span accuracy from chance to the reference. Scales must be expressed
so that they carry over to other models (for example relative to ‖θ*‖, or calibrated to an
accuracy drop): `harness.subspace` does so, and S1's and S2's deviations say how."""

MODEL_CURVES = """\
Model curves of the diversity plane (official code; a = sample accuracy, a_r = reference accuracy,
C = classes; each divided by 1−a when plotted): "perturbed reference"
d_low(a) = (a_r − a)/(a_r + (a_r − 1)/(C − 1)); "independent errors"
d_up(a) = a_r(1−a) + a(1−a_r) + (1−a_r)(1−a)(C−2)/(C−1). These are reference models, not bounds.
The hard bounds are |a − a_r| ≤ d ≤ min(1, 2 − a − a_r) (`harness.metrics.diversity_lower_model`,
`diversity_upper_model`, `diversity_bounds`)."""

TRIMMING = """\
Definition from the authors' code (Sinjini77/RobustKSTest): scalar output per example (logit gap for
binary tasks; for C classes use the margin, top-1 minus top-2 logit, and say so); trimmed Kolmogorov
distance d_K(R_α(G), F₀) = min over α-trimmings G̃ of G (dG̃/dG ≤ 1/(1−α)) of sup |G̃ − F₀|;
α̂ = smallest α on the grid {0, .01, .025, .05, .075, .1, .15, …, .45} with d_K ≤ δ,
δ = √(log(2/ε)/n) + 1/n, ε = 0.01; 0.5 if none; averaged over 100 bootstraps that split the
examples into two disjoint halves. The authors' code interpolates the reference ECDF linearly and
sets logit gaps beyond ±15 to 0; its running maxima are O(n²). `harness.trimming` computes it
exactly in O(n log n), verified against a linear-programming brute force in the tests."""

LATER = """\
Snapshot ensembles (cyclic LR) stay in one mode; init alone and data order alone each give
near-full diversity (Summers & Dinneen 2021); per-layer CKA between seeds; trimmed-mean vs mean
combination of members; an ensemble vs one model with the same parameter count."""

SUGGESTED: dict[str, str] = {
    "T1": "step distance 1−cos(θ_e, θ_{e+1}) over the last quarter of epochs ≤ half of that over the first "
          "quarter, in every seed; late consecutive cos ≥ 0.95 (bootstrap lower bound over seeds)",
    "T2": "cos(θ_0, θ_e) decreases with e: mean Spearman ρ over seeds ≤ −0.8",
    "T3": "d(p_e, p_{e+1}) over the last quarter ≤ half of the first quarter; d(p_1, p_E) > d(p_{E−1}, p_E)",
    "I1": "mean cross-seed cos of finals ≤ 0.1 (bootstrap upper bound) and ≤ late within-run cos − 0.5; record "
          "the nulls: cross-seed cos at initialisation, and cos(θ, π(θ)) for a random neuron permutation π "
          "(same function, see P1)",
    "I2": "mean normalised diversity over pairs ≥ 0.5 (lower bound), and cross-seed d ≥ 1.5 × late within-run d",
    "I3": "Jaccard overlap of error sets between independent runs < between the last two snapshots of one run",
    "F1": "decide in prediction space, not on t-SNE coordinates: nearest-neighbour purity of late checkpoints "
          "(own run) ≥ 0.9, and between-run distance at epoch 1 < at epoch E. t-SNE (joint embedding of all "
          "runs, never one embedding per run) is for the figure",
    "S1": "for each sampler, ≥ 95% of samples (at ensemble scales) are closer in function space to their own "
          "centre than to any other independent solution",
    "S2": "among samples whose accuracy is near the independent runs', mean normalised diversity ≤ 0.7 × the "
          "independent runs'; plot both with the paper's two model curves",
    "N1": "mean over all k-subsets (or a fixed random sample of them): acc(K) − acc(1) > 0 (CI), "
          "gain(1→2) ≥ gain(K−1→K), last gain ≤ 0.25 × first gain",
    "N2": "K-run ensemble better in accuracy and Brier than WA and than each 30-sample subspace ensemble",
    "N3": "ensemble of subspace ensembles ≥ plain ensemble at each k; gain at k=K ≤ gain at k=1",
    "X1": "per intensity: ensemble Brier < single; JS order independent > trajectory > subspace; JS rises "
          "with intensity",
    "P1": "hypothesis over models, widths, permutations: outputs equal to float tolerance; cos(θ, π(θ)) < 1 and "
          "≈ 0 for random wide layers",
    "P2": "aligning π(θ) onto θ gives cos = 1 and identical outputs, for MLP and CNN",
    "P3": "report aligned vs raw cos and barrier; narrow nets keep a barrier",
    "A1": "α̂ (or d_K) between the two decreases with M; report the smallest M with α̂ ≤ 0.05",
    "A2": "a seed's α̂ against the reference (the authors split the runs into candidates and reference) is small "
          "against a stated null (e.g. α̂ between two halves of the reference)",
    "A3": "a model trained differently whose accuracy, disagreement with the seeds and ECE lie within the seeds' "
          "range gets an α̂ above every ordinary seed's",
}
"""The decision the catalog first suggested, per claim id (a starting point; the harness's own
decision, :attr:`harness.catalog.ClaimInfo.decision`, says where it differs). W1 is the
harness's own protocol check and has none."""


@dataclass(frozen=True)
class PropertyClaim:
    """A claim decided by property tests under ``tests/`` rather than by a claim test."""

    id: str
    title: str
    statement: str
    source: str
    tests: str


PROPERTY_CLAIMS: dict[str, PropertyClaim] = {c.id: c for c in (
    PropertyClaim("P1", "permutations keep the function, not the cosine",
                  "Permuting hidden units leaves the function unchanged but changes weight cosine: (1, −3, 2, 1) "
                  "vs its permuted twin (−3, 1, 1, 2) has cos −2/15.", "seed comments; [ReBasin]",
                  "`tests/test_symmetry.py`, `tests/test_weightspace.py`"),
    PropertyClaim("P2", "weight matching recovers a planted permutation",
                  "Weight matching recovers a planted permutation.", "[ReBasin]", "`tests/test_matching.py`"),
)}


@dataclass(frozen=True)
class Family:
    """A section of the catalog: its claims in order, with text before and after them."""

    title: str
    ids: tuple[str, ...]
    before: str = ""
    after: str = ""


FAMILIES: tuple[Family, ...] = (
    Family("Within one trajectory", ("T1", "T2", "T3")),
    Family("Between independent runs", ("I1", "I2", "I3", "F1")),
    Family("Subspaces around one solution", ("W1", "S1", "S2"), before=SAMPLERS, after=MODEL_CURVES),
    Family("Ensembles", ("N1", "N2", "N3")),
    Family("Dataset shift", ("X1",), before="Corruptions after [HD19] (`harness.corruptions`), intensities 1–5."),
    Family("Symmetry (property tests and beyond the paper)", ("P1", "P2", "P3")),
    Family("Seed variability (α-trimming level)", ("A1", "A2", "A3"), before=TRIMMING),
)


# ----------------------------------------------------------------------------------------------
# Facts read from the code


def threshold_provenance(source: str) -> dict[str, str]:
    """The ``#:`` comment block directly above each module-level assignment of ``source``.

    Parameters
    ----------
    source : str
        Python source, e.g. ``harness/catalog.py``'s.

    Returns
    -------
    dict of str to str
        Assigned name -> its ``#:`` lines joined by spaces; names without such a block are absent.

    Examples
    --------
    >>> threshold_provenance("# group\\n#: why\\n#: it is so\\nX = 1\\nY = 2\\n")
    {'X': 'why it is so'}
    """
    found, block = {}, []
    for line in source.splitlines():
        if line.startswith("#:"):
            block.append(line[2:].strip())
            continue
        match = re.match(r"([A-Za-z_]\w*)\s*(?::[^=]*)?=", line)
        if match and block:
            found[match.group(1)] = " ".join(block)
        block = []
    return found


def _is_claim_mark(node: ast.expr) -> str | None:
    """The id of a ``@pytest.mark.claim(id="...")`` decorator, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "claim"
            and ast.unparse(node.func.value) in ("pytest.mark", "mark")):
        for keyword in node.keywords:
            if keyword.arg == "id" and isinstance(keyword.value, ast.Constant):
                return keyword.value.value
    return None


def claim_tests(claims_dir: Path = CLAIMS_DIR) -> dict[str, list[str]]:
    """Claim id -> ``"claims/<module>::<test>"`` of the test functions marked with it (read, not imported)."""
    tests: dict[str, list[str]] = {}
    for path in sorted(claims_dir.glob("test_*.py")):
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if isinstance(node, ast.FunctionDef):
                for claim_id in filter(None, map(_is_claim_mark, node.decorator_list)):
                    tests.setdefault(claim_id, []).append(f"{claims_dir.name}/{path.name}::{node.name}")
    return tests


# ----------------------------------------------------------------------------------------------
# Rendering


def _paragraph(text: str) -> str:
    return text.strip() + "\n"


def _threshold_lines(claim_id: str, provenance: Mapping[str, str]) -> list[str]:
    return [f"  - `{name} = {getattr(catalog, name)!r}`: {provenance[name]}" for name in THRESHOLDS[claim_id]]


def _claim_section(claim_id: str, provenance: Mapping[str, str], tests: Mapping[str, Sequence[str]]) -> list[str]:
    suggested = SUGGESTED.get(claim_id, "— (a protocol check of the harness, not a claim of the sources)")
    if claim_id in PROPERTY_CLAIMS:
        prop = PROPERTY_CLAIMS[claim_id]
        return [f"### {claim_id} — {prop.title}", "", prop.statement, "",
                f"- **Source:** {prop.source}",
                f"- **Suggested decision:** {suggested}",
                f"- **Decided by:** property tests in {prop.tests} (hypothesis), not a claim test", ""]
    info = CATALOG[claim_id]
    lines = [f"### {claim_id} — {info.title}", "", info.statement, "",
             f"- **Source:** {info.source}",
             f"- **Reference numbers:** {info.reference}",
             f"- **Suggested decision:** {suggested}",
             f"- **Decision:** {info.decision}"]
    if THRESHOLDS[claim_id]:
        lines += ["- **Thresholds** (`harness.catalog`):"] + _threshold_lines(claim_id, provenance)
    else:
        lines.append("- **Thresholds:** none of its own: every comparison is a sign (a difference against 0)")
    if info.deviations:
        lines.append(f"- **Deviations:** {info.deviations}")
    lines.append("- **Test:** " + ", ".join(f"`{t}`" for t in tests.get(claim_id, ())))
    return lines + [""]


def _index(tests: Mapping[str, Sequence[str]]) -> list[str]:
    lines = ["| ID | Claim | Source | Decided by |", "|---|---|---|---|"]
    for family in FAMILIES:
        for claim_id in family.ids:
            if claim_id in PROPERTY_CLAIMS:
                prop = PROPERTY_CLAIMS[claim_id]
                lines.append(f"| {claim_id} | {prop.title} | {prop.source} | {prop.tests} |")
            else:
                info = CATALOG[claim_id]
                modules = dict.fromkeys(t.split("::")[0] for t in tests.get(claim_id, ()))
                lines.append(f"| {claim_id} | {info.title} | {info.source} | "
                             + ", ".join(f"`{m}`" for m in modules) + " |")
    return lines + [""]


def render(provenance: Mapping[str, str] | None = None, tests: Mapping[str, Sequence[str]] | None = None) -> str:
    """The text of ``docs/claims.md``.

    Parameters
    ----------
    provenance : mapping of str to str, optional
        Threshold name -> provenance; default: :func:`threshold_provenance` of ``harness/catalog.py``.
    tests : mapping of str to sequence of str, optional
        Claim id -> its claim tests; default: :func:`claim_tests` of ``claims/``.

    Returns
    -------
    str
        Markdown, ending in one newline; the same inputs give the same bytes.
    """
    provenance = threshold_provenance(CATALOG_PATH.read_text()) if provenance is None else provenance
    tests = claim_tests() if tests is None else tests
    lines = ["# The claims catalog", "",
             f"<!-- Generated by `{REGENERATE}` from harness/catalog.py and harness/catalog_doc.py: "
             "edit those and regenerate; tests/test_catalog_doc.py checks that this file is current. -->", "",
             _paragraph(INTRO), "## Index", ""] + _index(tests)
    lines += ["## Sources", ""] + [f"- [{key}] {text}" for key, text in SOURCES] + [""]
    lines += ["## Notation", "", _paragraph(NOTATION)]
    lines += ["## Metric definitions (as the sources compute them)", ""]
    lines += [f"- **{name}:** {definition}" for name, definition in METRICS] + [""]
    for family in FAMILIES:
        lines += [f"## {family.title}", ""]
        if family.before:
            lines += [_paragraph(family.before)]
        for claim_id in family.ids:
            lines += _claim_section(claim_id, provenance, tests)
        if family.after:
            lines += [_paragraph(family.after)]
    lines += ["## Also worth claims (later)", "", _paragraph(LATER)]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write ``docs/claims.md`` (or ``--output``); with ``--check``, exit 1 if it differs from :func:`render`."""
    parser = argparse.ArgumentParser(prog="python -m harness.catalog_doc", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DOC_PATH, help="where to write (default: docs/claims.md)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render().encode("utf-8")
    if args.check:
        current = args.output.is_file() and args.output.read_bytes() == text
        if not current:
            print(f"{args.output} is stale: regenerate it with `{REGENERATE}`")
        return 0 if current else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
