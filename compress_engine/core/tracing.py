"""torch.fx tracing that other threads do not notice: the engine's one way to trace (BatchNorm folding, structured
pruning).

While torch.fx's Tracer.trace runs, it patches torch.nn.Module.__call__ and __getattr__ for the whole process, so
a forward pass in any other thread goes through that tracer too. Its module calls fail ("NameError: module is not
installed as a submodule": the dashboard showed it when one session folded ResNet-8's BatchNorms while another
evaluated), and two traces at once restore each other's patches out of order, which can leave Module.__call__
patched for good. So here:

- one trace at a time in the process (a lock), so the patches are always undone in order;
- the tracer acts only for the thread that traces: another thread's module call and attribute read pass straight
  through to the module, as if nothing were patched.

    graph = trace(model)            # torch.fx.Graph, as fx.Tracer().trace(model)
    gm = symbolic_trace(model)      # torch.fx.GraphModule, as fx.symbolic_trace(model)
"""

import threading

import torch.fx as fx

_LOCK = threading.RLock()  # re-entrant: a trace of a model whose forward traces again (nested) still runs


class _ThreadTracer(fx.Tracer):
    """fx.Tracer whose patched Module.__call__ / __getattr__ act only in the thread that traces."""

    def __init__(self):
        super().__init__()
        self._owner = threading.get_ident()

    def call_module(self, m, forward, args, kwargs):
        if threading.get_ident() != self._owner:  # another thread's forward, caught by the process-wide patch
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if threading.get_ident() != self._owner:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


# torch's words when a forward gives a Python call that needs a number (range(x.size(1)), say) a tensor's size, which
# fx has only as a stand-in (a Proxy) while it traces
NOT_AN_INT = "'Proxy' object cannot be interpreted as an integer"


def _traced(tracer, model):
    """tracer.trace(model); fx's TypeError for a loop over a tensor's size says what to do instead."""
    try:
        return tracer.trace(model)
    except TypeError as e:
        if NOT_AN_INT not in str(e):
            raise
        raise TypeError(f"{e}: a call that needs a number, as range(x.size(1)) does, got a tensor's size, which fx has "
                        "only as a stand-in; loop a fixed number of steps instead (e.g. range(self.steps), a "
                        "constructor argument)") from e


def trace(model):
    """The torch.fx Graph of `model`'s forward, as fx.Tracer().trace(model), safe beside other threads."""
    with _LOCK:
        return _traced(_ThreadTracer(), model)


def symbolic_trace(model):
    """The torch.fx GraphModule of `model`, as fx.symbolic_trace(model), safe beside other threads."""
    with _LOCK:
        tracer = _ThreadTracer()
        graph = _traced(tracer, model)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)
