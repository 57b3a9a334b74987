"""``spikessm`` command line.

    spikessm demo   [--out DIR] [--seed S] [--restarts R] [--quiet]
    spikessm fit    FILE --model {lgssm,plds,hybrid,hmm,ssglm} --out DIR [options]
    spikessm score  FIT.npz FILE
    spikessm decode FIT.npz FILE --out DIR
    spikessm info   FILE
    spikessm sweep  CONFIG.json --out DIR [--scheduler ADDRESS] [--workers N]

``demo`` is the main job on an embedded default: it simulates a session with the
library's own generative models (no download), fits a Poisson LDS with restarts, a
Poisson HMM and a decoder, and writes an HTML report. ``fit`` does the same for a real
recording (.nwb, .mat, .npz, .csv; see ``spikessm.data.read``); ``score`` prints the
log-likelihood of a recording under a saved fit; ``decode`` decodes the latents or states
of a recording; ``info`` describes a recording or a saved file; ``sweep`` fits datasets x
models x state dimensions x restarts as Dask tasks (``spikessm.distributed``).

Errors (a missing file, a file spikessm cannot read, an unknown model, a bad option) print
one line ``spikessm: error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit status 2."""

    def error(self, message):
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from .commands import MODELS

    p = _Parser(prog="spikessm", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"spikessm {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    demo = sub.add_parser("demo", help="simulate a session, fit PLDS + HMM + decoder, report")
    demo.add_argument("--out", default="spikessm-demo", help="output folder (default: "
                      "./spikessm-demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--restarts", type=_positive_int, default=3)
    demo.add_argument("--state-dims", type=_positive_int, nargs="+", default=None,
                      help="also choose the Poisson LDS state dimension among these by "
                           "held-out predictive LL (adds about 30 s per dimension)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    fit = sub.add_parser("fit", help="fit a model to a recording and write a report")
    fit.add_argument("file")
    fit.add_argument("--model", required=True, choices=MODELS, metavar="MODEL",
                     help=f"one of {', '.join(MODELS)}")
    fit.add_argument("--out", required=True, help="output folder")
    fit.add_argument("--state-dim", type=_positive_int, default=3)
    fit.add_argument("--states", type=_positive_int, nargs="+", default=[2, 3, 4],
                     help="HMM numbers of states (several: chosen by held-out LL)")
    fit.add_argument("--bin", type=_positive_float, default=None, help="bin width, seconds")
    fit.add_argument("--layout", default=None, help="file layout (see spikessm.data.files)")
    fit.add_argument("--restarts", type=_positive_int, default=4)
    fit.add_argument("--max-iter", type=_positive_int, default=100)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--gaussian", default=None,
                     help="covariate used as Gaussian channels (--model hybrid)")
    fit.add_argument("--unit", type=int, default=0, help="unit index (--model ssglm)")
    fit.add_argument("--quiet", action="store_true")

    score = sub.add_parser("score", help="log-likelihood of a recording under a saved fit")
    score.add_argument("fit")
    score.add_argument("file")
    score.add_argument("--bin", type=_positive_float, default=None)
    score.add_argument("--layout", default=None)

    dec = sub.add_parser("decode", help="decode latents / states under a saved fit")
    dec.add_argument("fit")
    dec.add_argument("file")
    dec.add_argument("--out", required=True)
    dec.add_argument("--bin", type=_positive_float, default=None)
    dec.add_argument("--layout", default=None)

    sub.add_parser("sweep", add_help=False,
                   help="fit datasets x models x state dims x restarts on Dask "
                        "(spikessm sweep --help)")

    info = sub.add_parser("info", help="describe a recording or a saved spikessm file")
    info.add_argument("file")
    info.add_argument("--bin", type=_positive_float, default=None)
    info.add_argument("--layout", default=None)
    return p


def _run(args) -> int:
    from . import commands as C

    if args.command == "demo":
        from .demo import run_demo
        run_demo(Path(args.out), seed=args.seed, n_restarts=args.restarts,
                 state_dims=args.state_dims, progress=not args.quiet)
    elif args.command == "fit":
        C.fit_command(args.file, args.model, args.out, state_dim=args.state_dim,
                      states=args.states, bin_width=args.bin, layout=args.layout,
                      restarts=args.restarts, max_iter=args.max_iter, seed=args.seed,
                      gaussian=args.gaussian, unit=args.unit, progress=not args.quiet)
    elif args.command == "score":
        C.score_command(args.fit, args.file, bin_width=args.bin, layout=args.layout)
    elif args.command == "decode":
        C.decode_command(args.fit, args.file, args.out, bin_width=args.bin,
                         layout=args.layout)
    elif args.command == "info":
        if args.bin is not None or args.layout is not None:
            print(C.describe(C.read_recording(args.file, args.bin, args.layout), args.file))
        else:
            print(C.info_text(args.file))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sweep"]:
        from ..distributed.cli import sweep_main
        return sweep_main(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return _run(args)
    except _UsageError as exc:
        print(f"spikessm: error: {exc}", file=sys.stderr)
    except FileNotFoundError as exc:
        msg = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
        print(f"spikessm: error: {msg}", file=sys.stderr)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"spikessm: error: {msg}", file=sys.stderr)
    except KeyboardInterrupt:
        print("spikessm: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
