"""``hsrpose predict``: pose estimation on an image, a folder of images or a video.

Writes into ``--out``:
- ``results.json``: COCO keypoint results (``image_id``, ``category_id`` 1,
  ``keypoints`` [x, y, score] * K in image px, ``score``, ``bbox``), atomically;
- ``images.json``: the COCO ``images`` entries those ids refer to (file name or
  video frame, width, height);
- drawn pictures under ``vis/`` with the input's own file name and format
  (``photo.jpeg`` -> ``vis/photo.jpeg``, so ``photo.jpg`` and ``photo.jpeg`` in one
  folder keep one drawing each) or ``<video stem>_pose.mp4`` (video).

Image ids: from ``--ann`` (a COCO annotation file naming the images) when given,
else the file name's number (``000000391895.jpg`` -> 391895), else the position in
the sorted folder (1-based); a warning says how many names ``--ann`` did not know.
Video frames get their 0-based frame index.

An unreadable image or video frame is reported and skipped; the run goes on.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from hsrpose.data.keypoints import KNOWN_KEYPOINT_SETS

if TYPE_CHECKING:  # pragma: no cover
    from hsrpose.inference.pipeline import PoseEstimator

HELP = "run pose estimation on images, folders or videos"

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hsrpose.decode_settings import add_decode_arguments
    from hsrpose.inference.detectors import DETECTOR_SPECS
    from hsrpose.utils.argtypes import int_range

    parser.add_argument("input", metavar="INPUT", help="an image, a folder of images or a video file")
    parser.add_argument("--weights", required=True, help="hsrpose weights / checkpoint (.pth, .safetensors), a SimpleBaseline "
                        "pose_resnet or mmpose checkpoint, or an .onnx file (hsrpose export or any top-down heatmap graph)")
    parser.add_argument("--detector", default="auto", help=f"person detector: {DETECTOR_SPECS} (default: auto = YOLO when "
                        "installed, else HOG with a warning)")  # fmt: skip
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--backend", choices=("auto", "torch", "onnxruntime"), default="auto",
        help="auto: onnxruntime for .onnx weights, torch otherwise",
    )  # fmt: skip
    parser.add_argument("--ann", default=None, help="COCO annotation file: image ids for the results and the keypoint set to expect")
    parser.add_argument("--dataset", choices=tuple(KNOWN_KEYPOINT_SETS), default=None, help="keypoint set to expect when --ann gives none: coco, mpii or crowdpose")
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test (faster, ~1 AP lower)")
    parser.add_argument("--batch-size", type=int_range(1), default=32, help="crops per network call (default 32)")
    parser.add_argument("--frames-per-batch", type=int_range(1), default=8, help="video frames whose crops share network batches (default 8)")
    parser.add_argument("--det-thr", type=float, default=0.0, help="drop detector boxes below this score before pose estimation (default 0)")
    parser.add_argument("--kpt-thr", type=float, default=0.3, help="drawing: keypoints below this score are not drawn (default 0.3)")
    parser.add_argument("--box-thr", type=float, default=0.3, help="drawing: people below this instance score are not drawn (default 0.3)")
    parser.add_argument("--no-draw", action="store_true", help="write only the results JSON")
    parser.add_argument(
        "--exif", choices=("auto", "on", "off"), default="auto",
        help="apply the EXIF orientation of photos; auto: on, except with a coco: detector (dataset images: "
        "boxes refer to the stored pixels, as in 'hsrpose eval')",
    )  # fmt: skip
    add_decode_arguments(parser)
    from hsrpose.commands.model_options import add_model_options

    add_model_options(parser)
    # Video tracking (hsrpose.inference.video): ids, SimpleBaseline box propagation, One-Euro smoothing.
    parser.add_argument("--track", action="store_true", help="video: give each person a stable track_id (also writes posetrack.json)")
    parser.add_argument("--det-interval", type=int, default=1, metavar="N",
                        help="video with --track: run the detector every N frames, boxes between from the tracks' keypoints (default 1)")
    parser.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=None,
                        help="video with --track: One-Euro smoothing of each track's keypoints (default: on with --track)")


def run(args: argparse.Namespace) -> int:
    from hsrpose.decode_settings import decode_overrides, resolve_decode
    from hsrpose.errors import HsrposeError
    from hsrpose.inference.detectors import build_detector
    from hsrpose.inference.pipeline import PoseEstimator
    from hsrpose.utils.argtypes import check_device
    from hsrpose.utils.io import atomic_write_json
    from hsrpose.utils.paths import check_output_dir

    src = Path(args.input)
    if not src.exists():
        raise HsrposeError(f"{src}: no such file or folder")
    out = check_output_dir(args.out, "--out")
    check_device(args.device, allow_auto=False)
    from hsrpose.commands.model_options import keypoints_from_args, onnx_spec_from_args

    file_ids, keypoint_info = _read_ann(args.ann) if args.ann else ({}, None)
    if keypoint_info is None and args.dataset:
        keypoint_info = KNOWN_KEYPOINT_SETS[args.dataset]  # checked against the weights' set below
    backend = args.backend
    if backend == "auto":
        backend = "onnxruntime" if str(args.weights).lower().endswith(".onnx") else "torch"
    estimator = PoseEstimator(
        weights=args.weights, detector=None, device=args.device, backend=backend, flip_test=not args.no_flip,
        batch_size=args.batch_size, keypoint_info=keypoint_info or keypoints_from_args(args), box_score_thr=args.det_thr,
        preset=args.preset, onnx_spec=onnx_spec_from_args(args),
    )  # fmt: skip
    # Decode settings: the weights' (stored at training), each explicit option overriding one.
    if estimator.decode_note:
        print(estimator.decode_note, file=sys.stderr)
    estimator.use_decode(resolve_decode(estimator.decode_settings, decode_overrides(args)))
    print(f"# decode: {estimator.decode_settings.describe(estimator.input_hw)}")
    # Built after the weights were checked (a wrong model is the more basic error) and
    # before any image is read (a bad detector spec fails at once); the annotation file's
    # names let a coco: detector find the image ids of file names.
    estimator.detector = build_detector(args.detector, device=args.device, file_names=file_ids or None)
    estimator.exif_orientation = {"on": True, "off": False}.get(args.exif)

    results: list[dict[str, Any]] = []
    images_meta: list[dict[str, Any]] = []
    if args.track or args.det_interval != 1 or args.smooth:
        return _run_tracked_video(src, out, estimator, args)
    if src.is_file() and src.suffix.lower() in VIDEO_EXTS:
        n_ok, n_bad = _run_video(src, out, estimator, args, results, images_meta)
        unit = "frames"
    else:
        files = _list_images(src)
        if args.ann:
            _warn_unknown_names(files, file_ids, args.ann)
        n_ok, n_bad = _run_images(files, out, estimator, args, file_ids, results, images_meta)
        unit = "images"
    atomic_write_json(out / "results.json", results)
    atomic_write_json(out / "images.json", images_meta)
    skipped = f", {n_bad} unreadable skipped" if n_bad else ""
    print(f"hsrpose predict: {n_ok} {unit}{skipped}, {len(results)} people -> {out / 'results.json'}")
    return 0 if n_ok > 0 or n_bad == 0 else 1


def _run_tracked_video(src: Path, out: Path, estimator: "PoseEstimator", args: argparse.Namespace) -> int:
    """``--track`` / ``--det-interval`` / ``--smooth``: the frame-by-frame loop of hsrpose.inference.video."""
    from hsrpose.errors import HsrposeError
    from hsrpose.inference.video import VideoOptions, run_video_file

    if not (src.is_file() and src.suffix.lower() in VIDEO_EXTS):
        raise HsrposeError(f"{src}: --track, --det-interval and --smooth work on a video file ({', '.join(VIDEO_EXTS)})")
    opts = VideoOptions(track=args.track, det_interval=args.det_interval, smooth=args.track if args.smooth is None else args.smooth)
    frames, run = run_video_file(src, out, estimator, opts, draw=not args.no_draw, kpt_thr=args.kpt_thr, box_thr=args.box_thr)
    n_people = sum(len(f.poses) for f in frames)
    skipped = f", {run.frames_bad} undecodable skipped" if run.frames_bad else ""
    print(f"hsrpose predict: {run.frames_ok} frames{skipped}, {n_people} poses, {len(run.track_ids)} tracks, "
          f"{run.fps:.1f} frames/s (detector on {run.detector_calls}) -> {out / 'results.json'}")  # fmt: skip
    return 0


def _read_ann(path: str) -> tuple[dict[str, int], Any]:
    from hsrpose.data.keypoints import KeypointInfo
    from hsrpose.errors import DataError

    from hsrpose.utils.io import read_json

    data = read_json(path)  # a missing file or bad JSON: DataError naming the file, line and column
    try:
        ids = {Path(im["file_name"]).name: int(im["id"]) for im in data.get("images", [])}
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"--ann {path}: cannot read a COCO annotation file: {e!r}") from None
    info = None
    for cat in data.get("categories", []):
        if cat.get("id") == 1 and "keypoints" in cat:
            try:
                # COCO categories carry no sigmas / flip pairs; a custom set may add them as extra fields.
                info = KeypointInfo.from_coco_category(cat, flip_pairs=cat.get("flip_pairs"), sigmas=cat.get("sigmas"))
            except ValueError as e:
                raise DataError(f"--ann {path}: category 1: {e}") from None
    return ids, info


def _list_images(src: Path) -> list[Path]:
    from hsrpose.errors import HsrposeError

    if src.is_file():
        return [src]
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise HsrposeError(f"{src}: no images ({', '.join(IMAGE_EXTS)}) in this folder")
    return files


def _warn_unknown_names(files: list[Path], file_ids: dict[str, int], ann: str) -> None:
    """Say when ``--ann`` does not name some of the images: their ids then come from the file name's
    number or the position in the folder, which may not be the ids the user expects."""
    unknown = [p.name for p in files if p.name not in file_ids]
    if not unknown:
        return
    which = "none of the" if len(unknown) == len(files) else f"{len(unknown)} of the"
    _report(
        f"--ann {ann} names {which} {len(files)} input images (e.g. {unknown[0]}); their image ids come from "
        "the file name's number, else the position in the folder"
    )


def _image_id(path: Path, index: int, file_ids: dict[str, int]) -> int:
    if path.name in file_ids:
        return file_ids[path.name]
    return int(path.stem) if path.stem.isdigit() else index + 1


def _report(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"hsrpose predict: warning: {msg}", file=sys.stderr)


def _run_images(
    files: list[Path], out: Path, estimator: "PoseEstimator", args: argparse.Namespace, file_ids: dict[str, int],
    results: list[dict[str, Any]], images_meta: list[dict[str, Any]],
) -> tuple[int, int]:  # fmt: skip
    """Images one by one; returns (images done, images skipped)."""
    import cv2

    from hsrpose.data.imageio import read_image_bgr
    from hsrpose.errors import HsrposeError
    from hsrpose.utils.io import atomic_write_bytes
    from hsrpose.utils.progress import progress
    from hsrpose.vis import draw_poses

    n_ok = n_bad = 0
    used_ids: set[int] = set()
    for index, path in enumerate(progress(files, desc="predict", unit="img")):
        try:
            image = read_image_bgr(path, exif_orientation=estimator.reads_exif())
        except HsrposeError as e:
            _report(f"{e}; skipped")
            n_bad += 1
            continue
        image_id = _image_id(path, index, file_ids)
        if image_id in used_ids:  # two names with the same number: keep ids unique
            image_id = max(used_ids) + 1
        used_ids.add(image_id)
        instances = estimator(image, image_key=path.name)
        results.extend(inst.to_coco(image_id) for inst in instances)
        images_meta.append({"id": image_id, "file_name": path.name, "height": int(image.shape[0]), "width": int(image.shape[1])})
        n_ok += 1
        if not args.no_draw:
            drawn = draw_poses(image, instances, estimator.keypoint_info, kpt_thr=args.kpt_thr, box_thr=args.box_thr)
            # the input's own name and format: names in one folder are unique, so are the drawings
            # (a single input file without an image extension gets ".jpg" added)
            known = path.suffix.lower() in IMAGE_EXTS
            ok, buf = cv2.imencode(path.suffix.lower() if known else ".jpg", drawn)
            if ok:
                atomic_write_bytes(out / "vis" / (path.name if known else path.name + ".jpg"), buf.tobytes())
    return n_ok, n_bad


def _frames(cap: Any) -> Iterator[tuple[int, Any]]:
    """(index, BGR frame) of a capture; an undecodable frame is reported and skipped
    (:func:`hsrpose.inference.video.read_frames`, the reader ``--track`` uses too)."""
    import cv2

    from hsrpose.inference.video import read_frames

    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    yield from read_frames(cap, total, lambda index: _report(f"video frame {index} could not be decoded; skipped"))


def _run_video(
    src: Path, out: Path, estimator: "PoseEstimator", args: argparse.Namespace,
    results: list[dict[str, Any]], images_meta: list[dict[str, Any]],
) -> tuple[int, int]:  # fmt: skip
    """Frames in groups of ``--frames-per-batch``; returns (frames done, frames skipped)."""
    import cv2

    from hsrpose.errors import HsrposeError
    from hsrpose.utils.progress import progress
    from hsrpose.vis import draw_poses

    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise HsrposeError(f"{src}: OpenCV cannot open this video")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if 0 < fps < 1000 else 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    final = out / f"{src.stem}_pose.mp4"
    # VideoWriter picks the container from the file extension, so the temporary file
    # keeps ".mp4"; it is renamed over the final name only when the video is complete.
    tmp = out / f".{src.stem}_pose.partial.mp4"
    writer = None
    n_ok = n_bad = 0
    batch: list[tuple[int, Any]] = []

    def flush() -> None:
        nonlocal writer
        # frame indices as image keys: a coco: detector reads precomputed boxes per frame
        poses = estimator.predict_batch([f for _, f in batch], image_keys=[i for i, _ in batch])
        for (index, frame), instances in zip(batch, poses):
            results.extend(inst.to_coco(index) for inst in instances)
            images_meta.append({"id": index, "file_name": f"{src.name}#frame={index}", "height": int(frame.shape[0]), "width": int(frame.shape[1])})
            if args.no_draw:
                continue
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not writer.isOpened():
                    raise HsrposeError(f"{tmp}: OpenCV cannot write an mp4v video here")
            writer.write(draw_poses(frame, instances, estimator.keypoint_info, kpt_thr=args.kpt_thr, box_thr=args.box_thr))
        batch.clear()

    completed = False
    try:
        with progress(total=total or None, desc="predict", unit="frame") as bar:
            last = -1
            for index, frame in _frames(cap):
                n_bad += index - last - 1
                last = index
                batch.append((index, frame))
                n_ok += 1
                if len(batch) >= max(1, args.frames_per_batch):
                    flush()
                bar.update(index - bar.n + 1)
            if batch:
                flush()
        completed = True
    finally:
        cap.release()
        if writer is not None:
            writer.release()
            if completed:
                os.replace(tmp, final)
            else:
                tmp.unlink(missing_ok=True)
    return n_ok, n_bad
