"""``intake-helio``: list catalogs and files, run the irradiance and reduce jobs and the demo.

Exit codes: 0 success (every frame ok), 3 finished with failed frames (listed in the
CSV), 2 bad input (something the user gave, or an --out another run is writing), 4
unexpected data (a registry, catalog or index on the server is malformed), 1 unexpected
error, 130 interrupted. Errors print one readable line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import warnings

from ..base.errors import HelioWarning
from ..base.options import TOLERANCE
from . import arguments as arg

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_FAILED_FRAMES, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BAD_DATA = 4


# --------------------------------------------------------------------------- commands
def cmd_ls(args) -> int:
    from ..catalog.registry import open_bucket

    so = arg.storage_options(args)
    bucket = open_bucket(arg.resolve_endpoint(args.endpoint, args, so), so)
    df = bucket.to_dataframe()
    if df.empty:
        print(f"{bucket.endpoint}: no datasets")
        return EXIT_OK
    _print_table(df)
    return EXIT_OK


def cmd_files(args) -> int:
    from ..catalog.registry import open_bucket
    from ..io.storage import shown

    so = arg.storage_options(args)
    bucket = open_bucket(arg.resolve_endpoint(args.endpoint, args, so), so)
    df = bucket[args.dataset].files(args.start, args.stop, errors=args.errors)
    bad = df.attrs.get("bad_rows", [])
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"wrote {len(df)} files to {args.out}")
    else:
        _print_table(df)
    for b in bad:
        print(
            f"skipped bad index row: {shown(b.file)} line {b.line}: {shown(b.reason)}",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_irradiance(args) -> int:
    from .job import run_irradiance_job

    so = arg.storage_options(args)
    out = arg.out_dir(args.out)
    cutout = arg.parse_cutout(args.cutout)
    dataset = arg.datasets(args)
    endpoint = arg.resolve_endpoint(args.endpoint, args, so)
    _, summary = run_irradiance_job(
        endpoint,
        dataset,
        args.start,
        args.stop,
        out,
        storage_options=so,
        cluster_kind=None if args.cluster == "none" else args.cluster,
        cluster_kwargs=arg.cluster_kwargs(args),
        units=args.units,
        resume=args.resume,
        cutout=cutout,
        part_size=args.part_size,
        progress=not args.no_progress,
        tolerance=args.tolerance,
        quality=args.quality,
        time_axis=args.time_axis,
        wait_lock=args.wait_lock,
        correct_degradation=args.correct_degradation,
        correction_table=args.correction_table,
    )
    print(summary.text())
    return EXIT_FAILED_FRAMES if summary.failed else EXIT_OK


def cmd_reduce(args) -> int:
    from .job import run_reduce_job

    so = arg.storage_options(args)
    out = arg.out_dir(args.out)
    cutout = arg.parse_cutout(args.cutout)
    formats = arg.parse_formats(args.format)
    science = [arg.science(v) for v in args.science or []]
    stats = args.stat or ([] if science else ["mean"])
    dataset = arg.datasets(args)
    endpoint = arg.resolve_endpoint(args.endpoint, args, so)
    try:
        _, summary = run_reduce_job(
            endpoint,
            dataset,
            args.start,
            args.stop,
            out,
            funcs=[*stats, *science],
            formats=formats,
            storage_options=so,
            cluster_kind=None if args.cluster == "none" else args.cluster,
            cluster_kwargs=arg.cluster_kwargs(args),
            units=args.units,
            resume=args.resume,
            cutout=cutout,
            part_size=args.part_size,
            progress=not args.no_progress,
            tolerance=args.tolerance,
            quality=args.quality,
            wait_lock=args.wait_lock,
            correct_degradation=args.correct_degradation,
            correction_table=args.correction_table,
        )
    except KeyboardInterrupt:  # the saved parts are kept: say how to continue
        print("intake-helio: interrupted; rerun with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(summary.text())
    return EXIT_FAILED_FRAMES if summary.failed else EXIT_OK


def cmd_demo(args) -> int:
    from ..testing.extras import require_extra

    require_extra("`intake-helio demo`", "moto[server]", "moto", "flask")
    if args.cluster == "gateway":
        require_extra(
            "`intake-helio demo --cluster gateway`", "dask-gateway-server", "dask_gateway_server"
        )
    from .demo import run_demo, serve_demo

    if args.serve:
        serve_demo(frames=args.frames, size=args.size, port=args.port)
        return EXIT_OK
    report = run_demo(
        out=arg.out_dir(args.out),
        frames=args.frames,
        size=args.size,
        cluster_kind=None if args.cluster == "none" else args.cluster,
        cluster_kwargs=arg.cluster_kwargs(args),
        progress=not args.no_progress,
    )
    print(report.summary.text())
    print(
        f"demo check ({', '.join(d.dataset_id for d in report.channels)}): max relative "
        f"difference from the generator's true means {report.max_rel_error:.2e}; failed frames "
        + (
            "are exactly the deliberately corrupt file(s)"
            if report.failed_as_expected
            else "DIFFER from the deliberately corrupt file(s)"
        )
    )
    from .demo import describe_magnetometer, describe_regions

    for data, files, describe, error, note in (
        (report.regions, report.region_files, describe_regions, report.regions_rel_error, ""),
        (
            report.magnetometer,
            report.magnetometer_files,
            describe_magnetometer,
            report.magnetometer_rel_error,
            "; second panel of the PNG",
        ),
    ):
        if data is None:
            continue
        for kind, path in files.items():
            print(f"wrote {kind}: {path}")
        print(
            f"{describe(data)} (max relative difference from the generator's truth "
            f"{error:.2e}{note})"
        )
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_gateway_server(args) -> int:
    from ..testing.extras import require_extra

    require_extra("`intake-helio gateway-server`", "dask-gateway-server", "dask_gateway_server")
    from ..testing.gateway_server import main as gateway_main

    argv = []
    if args.port:
        argv += ["--port", str(args.port)]
    return gateway_main(argv) or EXIT_OK


# --------------------------------------------------------------------------- parser
def _print_table(df) -> None:
    """Print a table of content (titles, ids, URLs) with every text cell made safe to show."""
    from ..io.storage import shown

    df = df.copy()
    for name in df.columns:
        if df[name].dtype == object:
            df[name] = df[name].map(lambda v: shown(v) if isinstance(v, str) else v)
    with _wide():
        print(df.to_string(index=False))


class _wide:
    def __enter__(self):
        import pandas as pd

        self._ctx = pd.option_context(
            "display.width", 200, "display.max_colwidth", 120, "display.max_rows", 10_000
        )
        self._ctx.__enter__()

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def _add_storage(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("storage")
    g.add_argument("--anon", action="store_true", help="anonymous S3 access (public buckets)")
    g.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint URL (e.g. a local server)")
    g.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="extra fsspec/s3fs option (repeatable); VALUE is JSON if it parses",
    )
    g.add_argument(
        "--registry",
        metavar="URL",
        default=None,
        help="registry JSON used when ENDPOINT is a bucket name",
    )
    g.add_argument("--region", default=None, help="bucket region, when the name is ambiguous")
    g.add_argument(
        "--no-cache",
        action="store_true",
        help="read catalog.json and index files from the store, not the on-disk cache",
    )


def _add_cluster(p: argparse.ArgumentParser, default: str) -> None:
    g = p.add_argument_group("cluster")
    g.add_argument(
        "--cluster",
        choices=("local", "gateway", "none"),
        default=default,
        help="local: a LocalCluster of processes; gateway: a dask-gateway cluster; "
        "none: the default dask scheduler (default: %(default)s)",
    )
    g.add_argument("--workers", type=arg.positive, default=None, help="number of workers")
    g.add_argument(
        "--worker-cores", type=arg.positive, default=None, help="threads (cores) per worker"
    )
    g.add_argument("--worker-memory", default=None, help="memory per worker (e.g. 4GiB, or GiB)")
    g.add_argument(
        "--gateway-address",
        default=None,
        help="dask-gateway address (default: dask config gateway.address)",
    )
    g.add_argument(
        "--scheduler-address",
        metavar="ADDRESS",
        default=None,
        help="run on a dask scheduler you already run (e.g. tcp://10.0.0.5:8786); it and its "
        "workers keep running afterwards",
    )


def _add_datasets(p: argparse.ArgumentParser) -> None:
    """DATASET (one or more) and ``--dataset`` (repeatable), and ``--tolerance``."""
    p.add_argument(
        "dataset",
        nargs="*",
        metavar="DATASET",
        help="dataset id; several (e.g. aia_0094 aia_0171) are channels on the first one's "
        "time axis, with results of dimensions (channel, time)",
    )
    p.add_argument(
        "--dataset",
        dest="datasets",
        action="append",
        metavar="ID",
        help="a dataset id (repeatable), after any given as DATASET",
    )
    p.add_argument(
        "--tolerance",
        type=arg.duration,
        default=TOLERANCE,
        help="with several datasets: how far another channel's frame may be from the first "
        "channel's time (default: %(default)s)",
    )


def _add_wait_lock(p: argparse.ArgumentParser) -> None:
    """``--wait-lock SECONDS``: wait for another run holding --out instead of refusing."""
    p.add_argument(
        "--wait-lock",
        type=arg.seconds,
        default=None,
        metavar="SECONDS",
        help="when another run is writing --out, wait up to SECONDS for it to end (inf: "
        "as long as it takes); default: refuse at once (exit 2), naming its pid",
    )


def _add_quality(p: argparse.ArgumentParser) -> None:
    """``--quality good``: frames whose header QUALITY is not 0 are skipped (not decoded)."""
    p.add_argument(
        "--quality",
        choices=("good",),
        default=None,
        help="good: skip frames whose header QUALITY is not 0 (status 'quality flag 0x...', "
        "counted in the summary; a frame without QUALITY is good); default: every frame",
    )


def _add_units(p, default: str) -> None:
    p.add_argument(
        "--units",
        choices=("DN/s", "DN"),
        default=default,
        help=f"DN/s: each frame divided by its EXPTIME (AIA's exposures shorten in flares, "
        f"so DN dips there); DN: as stored (default: {default})",
    )
    p.add_argument(
        "--normalize",
        dest="units",
        action="store_const",
        const="DN/s",
        help="the same as --units DN/s" + (" (the default)" if default == "DN/s" else ""),
    )


def _add_correction(p) -> None:
    """``--correct-degradation [--correction-table FILE]``: aiapy's degradation correction."""
    p.add_argument(
        "--correct-degradation",
        action="store_true",
        help="divide each frame by aiapy's degradation factor of its channel and time "
        "(needs the aia extra: pip install 'intake-helio[aia]')",
    )
    p.add_argument(
        "--correction-table",
        metavar="FILE",
        default=None,
        help="with --correct-degradation: AIA's correction table, an "
        "aia_V*_response_table.txt file (default: aiapy's, from JSOC over the network)",
    )


def _add_reduce(sub) -> None:
    from ..frames.reader import BUILTINS

    p = sub.add_parser(
        "reduce",
        help="statistics and/or your function of every frame over a time range, saved",
        description="Compute built-in statistics (--stat) and/or a function of your own "
        "(--science) on every frame, saved part by part (resumable) as reduce.csv "
        "(scalar outputs), reduce.nc, reduce.zarr and reduce.png.",
    )
    p.add_argument("endpoint")
    _add_datasets(p)
    p.add_argument("--start", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument(
        "--stat",
        action="append",
        type=arg.statistic,
        metavar="NAME",
        help=f"a statistic of each frame, repeatable: {', '.join(BUILTINS)}, or a "
        "percentile p<q> such as p99 or p99.9 "
        "(default: mean, when no --science is given)",
    )
    p.add_argument(
        "--science",
        action="append",
        metavar="MODULE:FUNCTION",
        help="your function f(data, header) -> number, numpy array or dict of those "
        "(repeatable); imported here and sent to the workers by value",
    )
    p.add_argument(
        "--format",
        action="append",
        metavar="csv,nc,zarr,png",
        help="files to write (default: csv,nc); csv holds the scalar outputs, png is made "
        "when every output is a scalar",
    )
    _add_units(p, "DN")
    _add_correction(p)
    p.add_argument("--resume", action="store_true", help="keep parts of an interrupted run")
    p.add_argument("--cutout", metavar="Y0:Y1,X0:X1")
    _add_quality(p)
    _add_wait_lock(p)
    p.add_argument(
        "--part-size",
        type=arg.positive,
        default=None,
        help="frames per saved part and Zarr chunk (default: setting intake_helio.part-size)",
    )
    p.add_argument("--no-progress", action="store_true")
    _add_storage(p)
    _add_cluster(p, "local")
    p.set_defaults(func=cmd_reduce)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intake-helio",
        description="HelioCloud CloudCatalog data as lazy frames and irradiance time series.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ls", help="list the datasets of a bucket")
    p.add_argument("endpoint", help="bucket root such as s3://gov-nasa-hdrl-data1/, or its name")
    _add_storage(p)
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("files", help="list a dataset's files in a time range")
    p.add_argument("endpoint")
    p.add_argument("dataset")
    p.add_argument("--start", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--out", metavar="FILE.csv")
    p.add_argument(
        "--errors",
        choices=("raise", "report"),
        default="raise",
        help="bad index rows: stop (raise) or skip and list them (report)",
    )
    _add_storage(p)
    p.set_defaults(func=cmd_files)

    p = sub.add_parser("irradiance", help="mean of every frame over a time range, saved")
    p.add_argument("endpoint")
    _add_datasets(p)
    p.add_argument("--start", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--out", required=True, metavar="DIR")
    _add_units(p, "DN/s")
    _add_correction(p)
    p.add_argument(
        "--time",
        dest="time_axis",
        choices=("start", "T_OBS"),
        default="start",
        help="the time axis: each frame's index start (DATE-OBS, start of the exposure; "
        "default) or its header's T_OBS (mid-exposure; one header read per frame more)",
    )
    p.add_argument("--resume", action="store_true", help="keep parts of an interrupted run")
    p.add_argument("--cutout", metavar="Y0:Y1,X0:X1")
    _add_quality(p)
    _add_wait_lock(p)
    p.add_argument(
        "--part-size",
        type=arg.positive,
        default=None,
        help="frames per saved part (default: setting intake_helio.part-size)",
    )
    p.add_argument("--no-progress", action="store_true")
    _add_storage(p)
    _add_cluster(p, "local")
    p.set_defaults(func=cmd_irradiance)

    _add_reduce(sub)

    p = sub.add_parser(
        "demo", help="the job on a local S3 endpoint with synthetic AIA 94 and 171 Å data"
    )
    p.add_argument("--out", default="demo-output", metavar="DIR")
    p.add_argument("--frames", type=arg.positive, default=48)
    p.add_argument(
        "--size", type=arg.positive, default=256, help="frame size in pixels (4096 = full)"
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="only serve the demo endpoint until Ctrl-C, for notebooks",
    )
    p.add_argument("--port", type=int, default=0, help="port for --serve (default: any free)")
    p.add_argument("--no-progress", action="store_true")
    _add_cluster(p, "local")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("gateway-server", help="run a local dask-gateway server on 127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.set_defaults(func=cmd_gateway_server)
    return parser


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def _exit_code(exc: BaseException) -> tuple[int, str]:
    """The exit code and the message's label for an error that ended a command."""
    from ..base.errors import (
        BucketUnavailableError,
        CatalogFormatError,
        IndexParseError,
        OutputLockedError,
    )
    from ..testing.extras import MissingExtraError as MissingExtra

    if isinstance(exc, CatalogFormatError | IndexParseError):
        return EXIT_BAD_DATA, "unexpected data"
    if isinstance(exc, OutputLockedError):  # refused like another unusable --out
        return EXIT_BAD_INPUT, "error"
    if isinstance(exc, MissingExtra | BucketUnavailableError):
        return EXIT_ERROR, "error"
    if isinstance(exc, ValueError | KeyError | FileNotFoundError | PermissionError):
        return EXIT_BAD_INPUT, "error"
    return EXIT_ERROR, "error"


_PLAIN_FORMAT = warnings.formatwarning


@contextlib.contextmanager
def _one_line_warnings():
    previous, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        yield
    finally:
        warnings.formatwarning = previous


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """This package's warnings as one line each (``intake-helio: warning: ...``)."""
    if issubclass(category, HelioWarning):
        return f"intake-helio: warning: {message}\n"
    return _PLAIN_FORMAT(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM (e.g. a batch system or `kill`) stops like Ctrl-C: servers and clusters we
    # started are shut down and saved parts are kept for --resume
    signal.signal(signal.SIGTERM, _interrupt)
    # warnings and errors only: libraries that set their own loggers to INFO (distributed's
    # scheduler and nannies) would otherwise print dozens of lines through this handler
    handler = logging.StreamHandler()
    handler.setLevel(logging.DEBUG if args.debug else logging.WARNING)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", handlers=[handler]
    )
    try:
        with _one_line_warnings():
            if getattr(args, "no_cache", False):
                import dask.config

                with dask.config.set({"intake_helio.cache.enabled": False}):
                    return args.func(args)
            return args.func(args)
    except KeyboardInterrupt:
        resumable = args.command in ("irradiance", "reduce")
        hint = "; rerun with --resume to continue" if resumable else ""
        print(f"intake-helio: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        code, label = _exit_code(exc)
        print(f"intake-helio: {label}: {msg}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
