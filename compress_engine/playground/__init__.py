"""Everything around the engine: the sample-model zoo, data sources, the run store, the command line,
chart data and explanations. It uses the engine (compress_engine.core); the engine never uses it.
"""
