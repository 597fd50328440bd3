"""Export to the formats phones run: LiteRT (.tflite) and ONNX, fp32 or int8.

The exported graph is a model's PyTorch twin behind an NHWC image input
(`graph`), converted by litert-torch or torch.onnx's dynamo exporter
(`formats`), quantised by ai-edge-quantizer or onnxruntime (`quantize`), and
checked against the Flax model before anything is written (`exporter`).
The runtimes that run the files (`formats.load_runtime`) also serve the
benchmark.
"""

from torch_twins.export.exporter import export
from torch_twins.export.formats import FORMATS, ExportError, load_runtime

__all__ = ['FORMATS', 'ExportError', 'export', 'load_runtime']
