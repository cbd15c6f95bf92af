"""`python -m compress_engine ...` and `compression-playground ...`: the command line (compress_engine.playground.cli).

`app` goes straight to the launcher (playground/launch.py), which imports neither torch nor the zoo: the dashboard's
server is up about 1.5 s sooner, and its warm-up imports torch while the browser loads the page.
"""

import sys


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["app"] and not {"-h", "--help"} & set(args[1:]):
        from compress_engine.playground.launch import main as app
        return app(args[1:])
    from compress_engine.playground.cli import main as cli
    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
