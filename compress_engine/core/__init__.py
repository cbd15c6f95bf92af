"""The model-agnostic engine: any nn.Module, any classification data, four techniques, real bytes.

It knows no sample-model names, no dataset files and no pages: those live in compress_engine.playground.
"""
