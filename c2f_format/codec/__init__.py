"""The codec and the public API: the two engines (torch_engine, numpy_engine) behind one
protocol (engines), the decoding pipeline (decoding), tiling and threads, then api and
batch, which `c2f_format.*` re-exports. Modules other than torch_engine import torch only
inside functions, so that a decode-only install (no torch) decodes."""
