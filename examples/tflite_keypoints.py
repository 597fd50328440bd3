"""Runs an exported .tflite keypoint detector on one image and draws its keypoints.

  python examples/tflite_keypoints.py MODEL.tflite IMAGE.png OUT.png

Needs only ai-edge-litert, numpy and matplotlib. The image must have the
size the sidecar (MODEL.tflite.json) gives as input shape, RGB.
"""

import sys

import matplotlib.pyplot as plt
import numpy as np
from ai_edge_litert.interpreter import Interpreter

model, image_path, out = sys.argv[1:4]
image = plt.imread(image_path)[..., :3].astype(np.float32)  # PNG: floats in [0, 1]
runner = Interpreter(model_path=model).get_signature_runner()
detail = runner.get_input_details()['image']
x = image[None]
if detail['dtype'] == np.int8:  # an --int8 file takes quantised pixels
  scale, zero = detail['quantization']
  x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
kp = runner(image=x)['kp'][0]  # (10, 2): x, y in [-1, 1], pixel centres at the ends
size = image.shape[0]
pixels = (kp + 1) / 2 * (size - 1)
plt.imshow(image)
plt.scatter(pixels[:, 0], pixels[:, 1], c=np.arange(len(kp)), cmap='tab10', s=40)
plt.axis('off')
plt.savefig(out, bbox_inches='tight', dpi=150)
print(f'{len(kp)} keypoints drawn on {image_path} -> {out}')
