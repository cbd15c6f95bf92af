"""Units: the one convention for every size, share and ratio the dashboard and its exports show.

Sizes are decimal (SI): 1 KB = 1,000 bytes and 1 MB = 1,000,000 bytes. That is what Streamlit's
file uploader shows on Linux and macOS, so a file reads the same size in the uploader and on the
page, and what a file manager shows. Upload limits are whole MB in this convention too.
Sparsity, accuracy and every other share of a whole are shown as percentages ("80.0 %"), never
as fractions; a Recipe keeps fractions (sparsity=0.8), and only the display converts.

Pure formatting: no streamlit, no plotly.
"""

KB = 1000
MB = 1000 * KB
CONVENTION = "1 KB = 1,000 bytes"  # named wherever sizes are shown (captions, help texts)
# weight files a visitor may upload, in MB: the sidebar's uploader and zoo.read_weights (here, as both need it and the
# sidebar draws before torch, which zoo imports, has loaded); the largest sample model is 9.6 MB
MAX_UPLOAD_MB = 50


def kb(n_bytes, digits=1):
    """'64.3 KB' (KB = 1,000 bytes)."""
    return f"{n_bytes / KB:,.{digits}f} KB"


def signed_kb(n_bytes, digits=1):
    """A size change: '+1.2 KB', '-980.3 KB'; one too small to show in KB, in bytes ('+7 B', not '+0.0 KB')."""
    if n_bytes and round(n_bytes / KB, digits) == 0:
        return f"{n_bytes:+,.0f} B"
    return f"{n_bytes / KB:+,.{digits}f} KB"


def mb(n_bytes, digits=1):
    """'52.4 MB' (MB = 1,000,000 bytes)."""
    return f"{n_bytes / MB:,.{digits}f} MB"


def size(n_bytes):
    """A size in the largest unit that keeps it readable: '950 bytes', '64.3 KB', '1.1 MB'."""
    if n_bytes < KB:
        return f"{int(n_bytes):,} bytes"
    if n_bytes < MB:
        return kb(n_bytes)
    return mb(n_bytes)


def pct(fraction, digits=1):
    """A share of a whole as a percentage: pct(0.8) == '80.0 %'. A share short of all or above none keeps the digits
    that say so (pct(0.99978) == '99.98 %', not '100.0 %': 94 weights of 307,402 were still there), up to 3 more."""
    for d in range(digits, digits + 4):
        text = f"{100 * fraction:.{d}f}"
        if not (0 < fraction < 1 and float(text) in (0.0, 100.0)):
            return f"{text} %"
    return "just under 100 %" if fraction > 0.5 else "just over 0 %"


def ratio(x):
    """A compression ratio: '12.3×'."""
    return f"{x:,.1f}×"


def ms(milliseconds, signed=False):
    """A duration in milliseconds to 3 significant figures at most (so a card's value fits its column):
    ms(0.6234) == '0.62 ms', ms(12.34) == '12.3 ms', ms(215.28) == '215 ms'; signed: '+0.62 ms', '-24.4 ms'."""
    size = abs(milliseconds)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2
    return f"{milliseconds:{'+' if signed else ''},.{digits}f} ms"


def duration(seconds):
    """A wait, roughly, in the unit a person counts it in: '8 s', '45 s', '3 min', '25 min', '1.5 h'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def remaining(elapsed, done, total):
    """Seconds still to go at the pace so far: `done` of `total` steps took `elapsed` seconds."""
    return elapsed / max(done, 1) * (total - done)


def left(seconds):
    """A progress bar's wait: 'about 3 min left'."""
    return f"about {duration(seconds)} left"


def faster(speedup):
    """How a speed-up reads in words, as it rounds: '3.2× faster', 'about as fast' (1.0×), '1.3× slower'."""
    if round(speedup, 1) == 1.0:
        return "about as fast"
    return f"{speedup:,.1f}× faster" if speedup > 1 else f"{1 / speedup:,.1f}× slower"
