"""Animates a source image with a driving video through FOMM's generator and any detector.

  python -m tools.animate --generator=checkpoints/fomm_vox_generator \
    --detector=workdirs/edgeseg --source=face.png --driving=driving.mp4 --out=result.mp4

FOMM's demo.py with `--relative --adapt_scale`: the source keypoints are
computed once, each driving frame's keypoints move them by as much as the
driving keypoints moved since its first frame (scaled by the faces' sizes).
--detector is any keypoint model's folder (a student's workdir, or
`tools.convert_fomm`'s --out for FOMM's own detector), so a distilled
student can drive FOMM's generator; the frames reach it at its own input
size. The source and the driving frames (.mp4, .gif or a frame folder) are
centre-cropped and resized to the generator's size as `data.frames` stores
them. Library: `train.animation`.
"""

from __future__ import annotations

import sys

from absl import flags

from tools import cli

_GENERATOR = flags.DEFINE_string(
  'generator', None, 'FOMM generator folder (tools.convert_fomm --generator_out)', required=True
)
_DETECTOR = flags.DEFINE_string(
  'detector', None, 'keypoint detector: a student workdir or a converted teacher', required=True
)
_SOURCE = flags.DEFINE_string('source', None, 'source image (.png, .jpg)', required=True)
_DRIVING = flags.DEFINE_string(
  'driving', None, 'driving video: .mp4, .gif or a folder of frames', required=True
)
_OUT = flags.DEFINE_string('out', None, 'video to write (new): .mp4 or .gif', required=True)
_BATCH = flags.DEFINE_integer('batch', 8, 'driving frames per generator call')
_SIZE = flags.DEFINE_integer('size', None, "frame size (default: the generator's, 256 for vox)")
_MAX_FRAMES = flags.DEFINE_integer('max_frames', None, 'animate the first frames only')
_RELATIVE = flags.DEFINE_boolean(
  'relative', True, "relative motion from the driving video's first frame (demo.py --relative)"
)
_ADAPT_SCALE = flags.DEFINE_boolean(
  'adapt_scale', True, "scale the motion by the faces' sizes (demo.py --adapt_scale)"
)
_SIDE_BY_SIDE = flags.DEFINE_boolean(
  'side_by_side', False, 'write source | driving with its keypoints | result'
)
_FPS = flags.DEFINE_float('fps', None, "frame rate (default: the driving video's, else 25)")


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from tqdm import tqdm

  from data import videos
  from train import animation

  try:
    videos.check_output(_OUT.value)
    generator, _ = animation.load_generator(_GENERATOR.value)
    detector, meta = animation.load_detector(_DETECTOR.value)
    animator = animation.Animator(generator, detector, size=_SIZE.value, batch=_BATCH.value)
    source = videos.read_image(_SOURCE.value, animator.size)
    driving = videos.read_video(_DRIVING.value, animator.size, max_frames=_MAX_FRAMES.value)
    with tqdm(total=len(driving), unit='frame') as bar:  # closed first: the error line is last
      predictions, kp = animator.drive(
        source,
        driving,
        relative=_RELATIVE.value,
        adapt_movement_scale=_ADAPT_SCALE.value,
        progress=lambda done: bar.update(done - bar.n),
      )
    result = videos.to_uint8(predictions)
    if _SIDE_BY_SIDE.value:
      result = videos.side_by_side(source, driving, kp['kp'], result)
    videos.write_video(_OUT.value, result, fps=_FPS.value or videos.video_fps(_DRIVING.value))
  except ValueError as error:  # AnimationError, CheckpointError, VideoError
    sys.exit(f'error: {error}')
  print(
    f'wrote {_OUT.value}: {len(result)} frames of {result.shape[2]}x{result.shape[1]}, '
    f"{meta['model']} driving FOMM's generator"
  )


if __name__ == '__main__':
  cli.run(main)
