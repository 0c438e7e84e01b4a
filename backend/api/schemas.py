"""Request forms and response models of the API; they are its OpenAPI schema.

explain, attack and compare take multipart/form-data: the image is either an uploaded `file`, a
dataset sample (`index`, with `dataset` and `split`; the dataset defaults to the run's), or one of
the run's fixed probe images (`probe`). Exactly one source per request.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from part.training.config import EXCLUSIVE_LOW, RANGES, range_text

Finite = dict(allow_inf_nan=False)
RUN_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
NUMBER_TEXT = r"^\s*(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(\s*/\s*\d+\.?\d*)?\s*$"


RUN_IDS = r"^\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99}(\s*,\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99})*\s*$"
RUN_PAIR = r"^\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99}\s*,\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99}\s*$"


def omittable(schema: dict[str, Any]) -> WithJsonSchema:
    """An optional form field is left out, never sent as null (a form cannot carry null)."""
    return WithJsonSchema(schema)


def documented(schema: dict[str, Any]) -> WithJsonSchema:
    """The field's rule in the schema; the service checks it with a message naming what is accepted."""
    return WithJsonSchema(schema)


def _ranged(name: str) -> dict[str, Any]:
    """A number field's schema with the bounds of part's one range table (config.RANGES)."""
    low, high = RANGES[name]
    return {"type": "number", "exclusiveMinimum" if name in EXCLUSIVE_LOW else "minimum": low, "maximum": high}


def _method_pattern() -> str:
    from part.explain.cam import METHODS

    return r"^\s*(" + "|".join(re.escape(m) for m in METHODS) + r")\s*$"


def _methods_pattern() -> str:
    from part.explain.cam import METHODS

    name = "(" + "|".join(re.escape(m) for m in METHODS) + ")"
    return rf"^\s*{name}(\s*,\s*{name})*\s*$"


class ImageForm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: Annotated[UploadFile | None, omittable({"type": "string", "format": "binary"})] = Field(None, description="an image: PNG, JPEG, WebP, BMP, TIFF or GIF (first frame)")
    dataset: Annotated[str | None, omittable({"type": "string", "minLength": 1})] = Field(None, description="dataset of the sample given by `index` (default: the run's)")
    split: Literal["train", "test"] = "test"
    index: Annotated[int | None, omittable({"type": "integer", "minimum": 0})] = Field(None, ge=0, description="a dataset sample instead of an upload")
    probe: Annotated[int | None, omittable({"type": "integer", "minimum": 0})] = Field(None, ge=0, description="one of the run's probe images instead of an upload")
    fit: bool = Field(False, description="an upload: fit it to the dataset's style first (Fashion-MNIST: invert a light background, crop to the object, pad to square, resize); the steps come back in input.fit_steps")


class CamForm(ImageForm):
    run: Annotated[str, documented({"type": "string", "pattern": RUN_ID})] = Field(
        description="run id, as listed by GET /api/runs")
    epoch: Annotated[int | None, omittable({"type": "integer", "minimum": 0})] = Field(
        None, ge=0, description="checkpoint epoch (default: the newest)")
    methods: Annotated[str, documented({"type": "string", "pattern": _methods_pattern()})] = Field("gradcam", description="CAM method(s), comma-separated; 'ensemble' is the default ensemble")
    ensemble: bool = Field(False, description="also combine the listed methods into one weighted ensemble map")
    weights: Annotated[str | None, omittable({"type": "string", "minLength": 1})] = Field(None, description="ensemble weights, comma-separated, one per method")
    target: Annotated[str, documented({"type": "string", "pattern": r"^\s*(pred|label|\d{1,6})\s*$"})] = Field("pred", description="class to explain: pred, label (dataset/probe images) or a class index")
    recipe: Annotated[str | None, omittable({"type": "string", "minLength": 1})] = Field(None, description="eps-map recipe (default: the run's)")
    eps: Annotated[str | None, omittable({"type": "string", "pattern": NUMBER_TEXT})] = Field(None, description="full budget, e.g. 0.1 or 8/255 (default: the run's)")
    eps_low: Annotated[str | None, omittable({"type": "string", "pattern": NUMBER_TEXT})] = Field(None, description="budget of unimportant pixels (default: the run's)")
    threshold: Annotated[float | None, omittable(_ranged("threshold"))] = Field(None, description=f"option of the paper/shuffled/uniform-mean recipes; {range_text('threshold')}", **Finite)
    tau: Annotated[float | None, omittable(_ranged("tau"))] = Field(None, description=f"option of the soft recipes; {range_text('tau')}", **Finite)
    quadrant: Annotated[str | None, omittable({"type": "string", "enum": ["ul", "ur", "bl", "br"]})] = Field(None, description="option of the quadrant recipe: ul, ur, bl, br")


class ExplainForm(CamForm):
    pass


class AttackForm(CamForm):
    """Several `methods` are combined into one eps-map (with `weights`, if given)."""
    attack: Literal["pgd", "mma"] = "pgd"
    budget: Literal["eps-map", "scalar"] = Field("eps-map", description="PART's per-pixel map, or eps everywhere")
    steps: int = Field(10, ge=1, le=200)
    step_size: Annotated[str | None, omittable({"type": "string", "pattern": NUMBER_TEXT})] = Field(None, description="step size (default: eps/4)")
    random_start: bool = True
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="seed of the random start (default: the server's "
                                                                   "stream), so the same request draws the same start")
    start_position: int = Field(0, ge=0, le=10_000_000, description="with seed: the image's position in a stored "
                                "evaluation of that seed, whose random start is drawn again (Who wins)")


class ExportForm(AttackForm):
    """The NPZ export: every map of `methods` (and the ensemble), and the attack within both budgets."""
    source: Annotated[str | None, omittable({"type": "string", "minLength": 1})] = Field(None, description="the map that sets the attack's eps-map: a method of `methods` or 'ensemble' (default: the last map)")


class CompareForm(ImageForm):
    runs: Annotated[str, documented({"type": "string", "pattern": RUN_IDS})] = Field(description="run ids, comma-separated (e.g. an AT run and a PART run)")
    epochs: Annotated[str | None, omittable({"type": "string", "pattern": r"^\s*(all|\d{1,6}(\s*,\s*\d{1,6})*)?\s*$"})] = Field(None, description="epochs, comma-separated (default: every epoch of each run)")
    method: Annotated[str | None, omittable({"type": "string", "pattern": _method_pattern()})] = Field(None, description="one CAM method (default: each run's own, read from its stored probes)")
    pair: Annotated[str | None, omittable({"type": "string", "pattern": RUN_PAIR})] = Field(None, description="two runs of the grid, 'A,B': the difference row is B's CAM minus A's (default: the first two runs)")
    top_k: float = Field(20.0, gt=0, le=100, description="the difference row's IoU compares the top-k % pixels of both maps", **Finite)


class CompareFigureForm(CompareForm):
    format: Literal["png", "pdf"] = Field("png", description="png (200 dpi) or pdf (vector)")


class Prediction(BaseModel):
    class_index: int
    class_name: str
    confidence: float
    probabilities: list[float]


class InputImage(BaseModel):
    kind: Literal["upload", "dataset", "probe"]
    size: int
    channels: int
    image_png: str
    label: int | None = None
    label_name: str | None = None
    dataset: str | None = None
    split: str | None = None
    index: int | None = None
    original: dict[str, Any] | None = Field(None, description="an upload's decoded width, height and mode")
    fit: bool | None = Field(None, description="whether the upload was fitted to the dataset's style")
    notes: list[str] = Field([], description="what the conversion to the model input did (shrunk, squashed, made grey)")
    fit_steps: list[str] = Field([], description="the steps of fitting to the dataset's style, in order")


class MaskStats(BaseModel):
    full_eps_fraction: float
    mean_eps_ratio: float


class MethodResult(BaseModel):
    method: str
    heatmap: list[list[float]]
    importance: list[list[float]] = Field(description="the CAM on the scale the recipe reads it, 0..1, as the overlay draws it (ExplainResponse.overlay_scale says which)")
    overlay_png: str
    eps_map: list[list[float]] = Field(description="per-pixel budget (mean over channels)")
    eps_map_png: str
    mask_stats: MaskStats
    energy_on_object: float | None = Field(None, description="sum(cam * object) / sum(cam); null where no object mask is known")
    road: dict[str, float] | None = Field(None, description="ROAD faithfulness of the map (pytorch_grad_cam.metrics.road): road_morf, road_lerf, road_combined")


class ExplainResponse(BaseModel):
    run: str
    epoch: int
    input: InputImage
    prediction: Prediction
    target: int
    recipe: str
    eps: float
    eps_low: float
    options: dict[str, Any]
    results: list[MethodResult]
    overlay_scale: str = Field(description="in words, the 0..1 scale the overlays draw (the recipe's own reading of the CAM)")
    object_fraction: float | None = Field(None, description="share of the image's pixels on the object; null where no object mask is known")
    shuffled_with: dict[str, Any] | None = Field(None, description="the shuffled recipe: the probe image whose CAM sets this image's eps-map")
    seconds: float


class AttackResponse(BaseModel):
    run: str
    epoch: int
    input: InputImage
    attack: str
    budget: str
    steps: int
    step_size: float
    eps: float
    eps_low: float
    recipe: str
    label: int = Field(description="the class attacked: the true label when known, else the clean prediction")
    before: Prediction
    after: Prediction
    fooled: bool
    adversarial_png: str
    perturbation_png: str = Field(description="x_adv - x amplified: grey is 0, black/white is -eps/+eps")
    perturbation: list[list[float]]
    perturbation_linf: float
    eps_map: list[list[float]]
    eps_map_png: str
    mask_stats: MaskStats
    shuffled_with: dict[str, Any] | None = Field(None, description="the shuffled recipe: the probe image whose CAM sets this image's eps-map")
    seconds: float


class CompareCell(BaseModel):
    run: str
    epoch: int
    available: bool
    source: Literal["stored", "computed", "missing", "size"]
    input_size: list[int] | None = Field(None, description="source 'size': the [channels, side] this run takes, "
                                                           "unlike the image (said once in `sizes`)")
    message: str | None = Field(None, description="why an existing checkpoint gave no cell (a missing epoch is said "
                                                    "once per run, in `missing`)")
    methods: list[str] = []
    overlay_png: str | None = None
    heatmap: list[list[float]] | None = None
    prediction: Prediction | None = None
    energy_on_object: float | None = Field(None, description="sum(cam * object) / sum(cam); null where no object "
                                                             "mask is known (see `object_mask`) or no CAM")


class CompareObjectMask(BaseModel):
    dataset: str
    known: bool
    fraction: float | None = Field(description="share of the image's pixels on the object")
    outline_png: str | None = Field(None, description="the object's outline as a transparent PNG data URL, "
                                                      "at the maps' display size, to draw over them")
    message: str = Field(description="how the object mask is made, or that none is known for the dataset")


class CompareMissing(BaseModel):
    run: str
    epochs: list[int] = Field(description="epochs of the grid without a checkpoint of this run")
    message: str


class CompareDifferenceCell(BaseModel):
    epoch: int
    available: bool
    message: str | None = None
    heatmap: list[list[float]] | None = Field(None, description="B's CAM minus A's, per pixel, in -1..1")
    difference_png: str | None = Field(None, description="the difference on a diverging scale (blue < 0 < red, "
                                                         "white at 0, +-scale at the ends) over the grey image")
    iou: float | None = Field(None, description="IoU of the top-k % pixels of A's and B's maps")
    spearman: float | None = Field(None, description="Spearman's rank correlation of A's and B's maps (null when "
                                                     "one map is constant)")
    mean_abs: float | None = Field(None, description="mean |B - A| over the pixels")
    max_abs: float | None = None
    energy_change: float | None = Field(None, description="B's energy on the object minus A's")


class CompareDifference(BaseModel):
    run_a: str
    run_b: str
    method: str | None = Field(description="the CAM method of both rows; null when their own methods differ")
    top_k: float
    scale: float = Field(description="the largest |B - A| of the row: the ends of its colour scale")
    note: str | None = None
    cells: list[CompareDifferenceCell] = Field(description="one per epoch of the grid")


class CompareResponse(BaseModel):
    input: InputImage
    runs: list[str]
    epochs: list[int]
    target: str
    cells: list[CompareCell] = Field(description="row-major: for each run, for each epoch")
    object_mask: CompareObjectMask
    missing: list[CompareMissing] = Field(description="one note per run without checkpoints for some epochs")
    sizes: list[str] = Field([], description="one note per input size the image does not have: which runs take it")
    difference: CompareDifference | None = Field(description="B - A for the pair; null with fewer than two runs")
    seconds: float


class RunSummary(BaseModel):
    id: str
    dataset: str | None
    model: str | None
    defense: str | None
    part: bool
    label: str | None = Field(description="the method as the paper's tables name it: AT, PART, TRADES, PART-T, MART, "
                                          "PART-M")
    recipe: str | None
    cam_methods: list[str]
    planned_epochs: int | None
    epochs: list[int] = Field(description="epochs with a checkpoint")
    probe_epochs: list[int] = Field([], description="epochs whose probe CAMs are stored (Compare shows them with "
                                                    "the run's own CAM method even where the checkpoint was dropped)")
    state: str = Field(description="queued, running, completed, failed, interrupted, cancelled, or broken "
                                   "(a file of the run folder cannot be read: see `problem`)")
    latest: dict[str, Any] | None = Field(description="the newest metrics row")
    problem: str | None = Field(None, description="why a broken run cannot be read")


class RunDetail(RunSummary):
    config: dict[str, Any]
    status: dict[str, Any]
    metrics: list[dict[str, Any]]
    evaluations: list[dict[str, Any]] = Field(description="the results of each evaluation folder of the run")
    probe_count: int
    problems: list[str] = Field([], description="files of the run that cannot be read (left out above)")


class Sample(BaseModel):
    dataset: str | None
    split: str | None
    index: int
    label: int
    label_name: str
    image_png: str


class DatasetInfo(BaseModel):
    name: str
    description: str
    num_classes: int
    in_channels: int
    image_size: int
    default_eps: float
    available: bool
    classes: list[str]
    sizes: dict[str, int]


class JobView(BaseModel):
    id: str
    kind: str
    state: str
    run_id: str
    spec: dict[str, Any]
    attempts: int
    exit_code: int | None
    message: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float | None
    pid: int | None
    executor: str = Field("local", description="local (the API's own processes) or slurm")
    scheduler_id: str | None = Field(None, description="the Slurm job id (ARRAYID_TASK for a sweep's cell)")
    phase: str | None
    epoch: int | None
    epochs: int | None
    progress: float | None
    eta_s: float | None
    latest_metrics: dict[str, Any] | None
    attack_seconds: dict[str, float] | None = Field(
        None, description="evaluation jobs: the seconds each finished attack took (the dashboard's ETA scales them)")


class JobsPruned(BaseModel):
    deleted: int = Field(description="how many job records were forgotten")
    ids: list[str] = Field(description="their ids")


class Health(BaseModel):
    status: str
    version: str
    device: str
    max_nproc: int = Field(description="the most training processes a job may ask for: GPUs on CUDA, else CPU cores")
    runs: int = Field(description="run folders with at least one checkpoint or stored probe CAMs")
    runs_without_checkpoint: int = Field(0, description="run folders with neither (cancelled before, or still in, "
                                                        "their first epoch)")
    jobs: dict[str, int]
    auth: bool
    model_requests: int = Field(description="explain/attack/compare requests computing now")
    model_concurrency: int = Field(description="the most computed at once; more get 503 with Retry-After")
    supervising: bool = Field(description="whether this server launches and watches the jobs of its checkpoints "
                                          "folder; false when another server on the same folder holds its "
                                          "supervisor lock (this one serves reads and queues submissions)")
    supervisor_pid: int | None = Field(None, description="the process that supervises the folder's jobs, if known")


# -- evaluations across runs (GET /api/evaluations, /api/evaluations/wins) --
class EvaluationsResponse(BaseModel):
    runs: list[str]
    reports: dict[str, list[dict[str, Any]]] = Field(description="per run, its evaluation folders and which of "
                                                                 "report files each holds")
    attacks: list[dict[str, Any]] = Field(description="attack names with one accuracy each, in Table 1 order, and their headings")
    rows: list[dict[str, Any]] = Field(description="one per run and epoch: the run's evaluations merged per checkpoint "
                                                   "(each attack from its largest evaluation, with n)")
    experiments: list[dict[str, Any]] = Field(description="per experiment (runs comparable with each other: "
                                                          "part.experiments) among the chosen runs: its methods, "
                                                          "pairs and the PART runs without a baseline, with why")
    methods: list[dict[str, Any]] = Field(description="per experiment and arm (runs that differ only in the seed): "
                                                      "mean and sample std (%) over its runs' newest epochs, and the "
                                                      "difference of means to its baseline arm")
    pairs: list[dict[str, Any]] = Field(description="each PART run minus its baseline (the same experiment's run of "
                                                    "its defense and seed without PART), in points, with the exact "
                                                    "McNemar p on the same images")
    classes: list[str] | None
    eps: list[dict[str, float]]
    images_line: str
    skipped: list[dict[str, str]] = Field(default=[], description="chosen runs left out, each with why (a file "
                                                                  "that cannot be read)")


class ExperimentsResponse(BaseModel):
    experiments: list[dict[str, Any]] = Field(description="each experiment: id (a shipped group or exp-<key "
                                                          "digest>), description, key, featured, runs, arms, "
                                                          "arm_of, baselines (run -> run, candidates, note), evaluated")
    problems: list[dict[str, str]] = Field(description="runs in no experiment because their config cannot be read")


class WinsImage(BaseModel):
    position: int = Field(description="position in the evaluated subset")
    index: int = Field(description="test-set index (for /api/explain and /api/attack)")
    label: int
    label_name: str


class WinsPage(BaseModel):
    total: int
    items: list[WinsImage]


class WinsResponse(BaseModel):
    run_a: str
    run_b: str
    epoch_a: int
    epoch_b: int
    label_a: str | None
    label_b: str | None
    attack: str
    heading: str
    attacks: list[str] = Field(description="every attack both runs were evaluated with on the same images")
    headings: dict[str, str] = Field(default={}, description="attack -> its heading (PGD-20, AA, ...)")
    dataset: str | None
    n: int
    sources: list[str] = Field(description="the evaluation folders (RUN/eval/NAME) the results come from")
    seeds: list[int | None] = Field(default=[], description="the seed each of the two evaluations drew its random "
                                                           "starts with")
    params: dict[str, Any] = Field(default={}, description="the attack's parameters as run A's evaluation stored them "
                                                          "(steps, step size, ...)")
    accuracy_a: float
    accuracy_b: float
    counts: dict[str, int] = Field(description="only_a, only_b (kept by one model only), both, neither")
    p: float = Field(description="exact two-sided McNemar p on the discordant images")
    difference: str = Field(default="", description="B minus A in points with its test; where p >= 0.05 the 95 % "
                                                    "interval instead of a bare p")
    classes: list[str]
    per_class: list[dict[str, Any]]
    offset: int
    limit: int
    only_a: WinsPage = Field(description="images run A keeps correct under the attack and run B loses")
    only_b: WinsPage = Field(description="images run B keeps correct under the attack and run A loses")
