"""Export MMIM checkpoints to ONNX and serve them with ONNX Runtime."""
