"""What every stage of the demo shares: names of plans and trainers, the settings, the stage timer, and the
``radconf_*`` commands, run in the demo's own process with their output in the demo log.

:mod:`.pipeline` runs the demo and calls :mod:`.confidence` and :mod:`.report`; all three import this module and
never each other the other way round.
"""
from __future__ import annotations

import io
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

from radconf.errors import CommandFailed, InvalidInput
from radconf.paths import environment_variables

LOG_NAME = "demo_log.txt"
LOG_FIRST_LINE = "radconf demo log"
PLANS = "radconfCPUPlans"
# nnU-Net's trainer without data augmentation: on the demo's small CPU budget it converges much faster than the
# default trainer, and the phantom's test cases share the training distribution, so the missing augmentation costs
# little here; real data should use the default trainer on a GPU.
TRAINER = "nnUNetTrainerNoDA"
CONFIDENCE_TRAINER = "ConfidenceTrainerNoDA"  # no augmentation, like the demo's first model (see TRAINER)
CLINICAL_LEVEL = 3  # the paper's starting point for a CTV
CROP_MARGIN_MM = 20  # around the readers' contours, for training (radconf_crop_dataset --margin)
LOCALIZER_MARGIN_MM = 25  # around the organ model's GTV, at prediction: readers reach beyond the consensus GTV
CONFIGURATION = "3d_fullres"
FOLD = "all"


def is_demo_folder(folder: Path) -> bool:
    """Whether ``folder`` holds the log of an earlier demo run (its first line says so)."""
    try:
        with open(folder / LOG_NAME, encoding="utf-8") as handle:
            return handle.readline().strip() == LOG_FIRST_LINE
    except (OSError, UnicodeDecodeError):
        return False


def check_demo_output(output: str | Path) -> None:
    """The demo writes nnU-Net folders, predictions, evaluations and a report into ``--out``: it must be new, an empty
    folder or an earlier demo's, never a folder of the user's.

    Raises:
        InvalidInput: ``--out`` is a file or a non-empty folder that no demo wrote, naming it and the fix.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise InvalidInput(f"--out {output} is a file; give a folder for the demo (a new one, e.g. --out "
                           f"{output.with_name(output.name + '_demo')}).")
    if output.is_dir() and any(output.iterdir()) and not is_demo_folder(output):
        raise InvalidInput(f"--out {output} is an existing folder that no radconf demo wrote (no {LOG_NAME}); the "
                           f"demo writes nnU-Net folders, predictions and a report there and would mix them with "
                           f"your files. Give a new or empty folder, e.g. --out {output / 'radconf_demo'}.")


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo run; ``fast`` is a smoke test of the whole path, not a meaningful model."""

    num_train: int = 16
    num_test: int = 4
    epochs: int = 20
    iterations_per_epoch: int = 50
    dataset_id: int = 501
    confidence_dataset_id: int = 502
    # the confidence levels cropped around the readers' contours (radconf_crop_dataset): the ConfidenceTrainer trains
    # on these crops, and predicts in the boxes the organ model's GTV gives (radconf_predict --localizer)
    confidence_crop_dataset_id: int = 503
    dicom_dataset_id: int = 511  # the phantom's TPS export imported back (radconf_import_dicom)
    # nnU-Net does not seed its training; on this small budget an unlucky start can find the GTV too late. A seed
    # with single-process augmentation makes the demo repeat.
    seed: int = 0
    phantom_spacing: tuple[float, float, float] | None = None  # None: the phantom's default (3 x 2 x 2 mm)
    test_time_augmentation: bool = True
    worker_processes: int = 2  # nnU-Net's planning, preprocessing and export workers (-np)

    @classmethod
    def fast(cls) -> DemoSettings:
        """A smoke run of every stage (not a meaningful model): coarse voxels (6 x 4 x 4 mm), 2 x 10 iterations,
        no test-time mirroring."""
        return cls(num_train=6, num_test=2, epochs=2, iterations_per_epoch=10, phantom_spacing=(6.0, 4.0, 4.0),
                   test_time_augmentation=False, worker_processes=1)


@dataclass
class StageTimer:
    """``with timer("name"):`` prints the stage's start and end and records its wall time in ``timings``."""

    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        print(f"--- {name}: {self.timings[name]:.1f} s", flush=True)


@dataclass(frozen=True)
class CommandContext:
    """Where the demo's commands run: nnU-Net environment, log file, device and settings."""

    environment: dict[str, str]
    log: Path
    device: str
    settings: DemoSettings


class _LogStream(io.TextIOBase):
    """stdout/stderr of a command run in this process: every line goes to the demo log; lines matching the progress
    pattern advance the bar."""

    def __init__(self, handle, bar, pattern: str | None):
        self.handle, self.bar, self.pattern, self.pending = handle, bar, pattern, ""

    def write(self, text: str) -> int:
        self.handle.write(text)
        if self.bar is not None:
            *lines, self.pending = (self.pending + text).split("\n")
            self.bar.update(sum(1 for line in lines if re.search(self.pattern, line)))
        return len(text)

    def flush(self) -> None:
        self.handle.flush()


def run_command(arguments: list[str], environment: dict[str, str], log: Path, progress: tuple[str, int, str] | None
                 = None) -> None:
    """Runs one radconf command, ``main(argv)`` of its module, in this process; its output goes to the demo log.

    In this process, not a child: each child would import torch and nnU-Net first (about 7 s on 2 cores, nine
    times per demo). The command is the same code as its console script, with the same arguments.

    Args:
        arguments: module and arguments (as for ``python -m``).
        environment: variables set in this process's environment while the command runs.
        log: the demo log.
        progress: (description, total, regex) - a tqdm bar advanced by every output line matching the regex.
    """
    import importlib

    from tqdm import tqdm

    shown = " ".join(["radconf_" + arguments[0].rsplit(".", 1)[-1], *arguments[1:]])
    print(f"$ {shown}", flush=True)
    bar = tqdm(total=progress[1], desc=progress[0], unit="step", file=sys.stderr) if progress else None
    command = importlib.import_module(arguments[0])
    with open(log, "a", encoding="utf-8") as handle, environment_variables(environment):
        handle.write(f"\n$ {shown}\n")
        stream = _LogStream(handle, bar, progress[2] if progress else None)
        with redirect_stdout(stream), redirect_stderr(stream):
            try:
                returncode = command.main(arguments[1:])
            except SystemExit as stopped:  # argparse
                returncode = stopped.code
    if bar is not None:
        bar.close()
    if returncode != 0:
        raise CommandFailed(f"'{shown}' failed (exit {returncode}); see {log} for its output.")


def training_environment(environment: dict[str, str]) -> dict[str, str]:
    """Training runs with single-process augmentation, so that ``--seed`` makes them repeat (and 2 cores are not
    oversubscribed by augmentation workers of a trainer that does not augment)."""
    return {**environment, "nnUNet_n_proc_DA": "0"}


def plan_dataset(context: CommandContext, dataset: str) -> None:
    """``radconf_plan_and_preprocess`` with the ``cpu`` preset."""
    run_command(["radconf.cli.plan_and_preprocess", "-d", dataset, "--preset", "cpu", "-c", CONFIGURATION, "-np",
                 str(context.settings.worker_processes)],
                context.environment, context.log)


def train_model(context: CommandContext, dataset: str, trainer: str) -> None:
    """``radconf_train`` on fold ``all`` with the demo's epochs, iterations and seed (no validation); an earlier demo
    run's checkpoint is continued (``--c``: a finished run trains nothing)."""
    settings = context.settings
    fold = f"Dataset{int(dataset):03d}_*/{trainer}__{PLANS}__{CONFIGURATION}/fold_{FOLD}/checkpoint_*.pth"
    resume = ["--c"] if any(Path(context.environment["nnUNet_results"]).glob(fold)) else []
    run_command(["radconf.cli.train", dataset, CONFIGURATION, FOLD, "-tr", trainer, "-p", PLANS, "-device",
                 context.device, "--epochs", str(settings.epochs), "--iterations_per_epoch",
                 str(settings.iterations_per_epoch), "--no_val", *resume, "--seed", str(settings.seed)],
                training_environment(context.environment), context.log,
                progress=("training epochs", settings.epochs, r"Epoch time:"))


def predict_cases(context: CommandContext, images: Path, predictions: Path, dataset: str, trainer: str,
                  extra: Sequence[str] = (), passes: int = 1) -> None:
    """``radconf_predict`` of the held-out images with the trained fold (``passes``: models run per case, 2 with a
    localiser)."""
    tta = () if context.settings.test_time_augmentation else ("--disable_tta",)
    run_command(["radconf.cli.predict", "-i", str(images), "-o", str(predictions), "-d", dataset, "-c",
                 CONFIGURATION, "-tr", trainer, "-p", PLANS, "-f", FOLD, "-device", context.device, "-np",
                 str(context.settings.worker_processes), *tta, *extra],
                context.environment, context.log,
                progress=("predicting cases", passes * context.settings.num_test, r"^Predicting "))
