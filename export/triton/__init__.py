"""Triton Inference Server: the model repository (repository), the client (client), the
python-backend model it serves (python_model), the serve script (serve.sh) with its own
venv (requirements.txt), and the load benchmark (bench)."""
from .repository import write_triton_repository

__all__ = ["write_triton_repository"]
