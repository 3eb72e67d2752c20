"""``venvsmith verify LOCK [-r FILE] [REQ ...] [index options]``: check a lock against this client's own indexes.

Exit 0: valid; 1: invalid (each reason on stderr); 2: bad input (unreadable lock, malformed TOML, bad options).
"""

from __future__ import annotations

import argparse
import sys
import time

from venvsmith.core.reqfile import ParsedRequirements, read_requirements


def add_verify_command(sub, add_index_options, add_target_options) -> None:
    p = sub.add_parser("verify", help="check a lock (pylock.toml or requirements with hashes) against your own "
                                      "indexes: hashes, requirements and dependency closure")
    p.add_argument("lock", metavar="LOCK", help="a pylock.toml (.toml) or a requirements file with --hash")
    p.add_argument("requirements", nargs="*", metavar="REQ", help="requirements the lock must satisfy")
    p.add_argument("-r", "--requirement", action="append", default=[], metavar="FILE")
    add_index_options(p)
    add_target_options(p)
    p.add_argument("--venv", metavar="PATH",
                   help="also check a venv directory or .tar.zst venv archive: every installed file matches the "
                        "RECORD of its pinned wheel (downloaded through your indexes, its hash checked first)")
    p.add_argument("--require-attestations", nargs="+", action="extend", default=[], metavar="NAME",
                   help="also check that the index's file of each named pin (or :all:) carries PEP 740 "
                        "attestations that verify offline here, against sigstore's shipped trust root")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when the lock is valid")


def index_source(args, index):
    """An :class:`IndexSource` over the client's own index configuration: ``index`` (an ``IndexConfig`` from the
    command line and ``-r`` files) completed by pip's configuration unless isolated.

    No on-disk cache: every page and metadata file is read afresh from the index (a verification does not trust
    a page cached earlier, and nothing is written to ``$VENVSMITH_HOME``)."""
    from venvsmith.cli import is_isolated
    from venvsmith.cli.compose import _pip
    from venvsmith.clients.verify import LISTING_WORKERS
    from venvsmith.core.index.finder import IndexSource
    from venvsmith.core.index.settings import settings_from_config

    settings = settings_from_config(index, _pip(is_isolated(args)), None)
    # Every page and metadata file of the lock is known up front: read them in one wide wave (latency-bound).
    return IndexSource(settings, workers=LISTING_WORKERS, max_connections=2 * LISTING_WORKERS)


def target_environment(args):
    from venvsmith.cli import _target_spec
    from venvsmith.core.convert import target_from_spec
    from venvsmith.core.target import TargetEnvironment

    return target_from_spec(_target_spec(args), TargetEnvironment.from_local())


def report(verdict, quiet: bool, what: str) -> int:
    from venvsmith.cli import EXIT_FAILED, EXIT_OK

    for note in verdict.notes:
        print(f"note: {note}", file=sys.stderr)
    if verdict.valid:
        if not quiet:
            print(f"{what}: valid")
        return EXIT_OK
    from venvsmith.cli.messages import plural

    print(f"{what}: INVALID ({plural(len(verdict.reasons), 'reason')})", file=sys.stderr)
    for reason in verdict.reasons:
        print(f"  - {reason}", file=sys.stderr)
    return EXIT_FAILED


def cmd_verify(args: argparse.Namespace) -> int:
    from venvsmith.cli import EXIT_BAD_INPUT, index_config
    from venvsmith.clients.verify import check_attestations, parse_requirements, read_lock, verify
    from venvsmith.core.attestations import attestation_names
    from venvsmith.core.errors import ServiceError

    started = time.perf_counter()
    lock = read_lock(args.lock)
    parsed = ParsedRequirements()
    for path in args.requirement:
        read_requirements(path, parsed)
    requirements = parse_requirements([*parsed.requirements, *args.requirements])
    try:
        names = attestation_names(args.require_attestations)
        target = target_environment(args)
        source = index_source(args, index_config(args, parsed))
    except ServiceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    tree = None
    if args.venv:
        from venvsmith.clients.verify_venv import read_tree, verify_tree

        tree = read_tree(args.venv)
    with source:
        verdict = verify(lock, requirements, source, target)
        if names:
            check_attestations(verdict, names, source)
        if tree is not None:
            verify_tree(tree, verdict.pins, source, verdict)
    from venvsmith.cli.messages import plural

    code = report(verdict, args.quiet, f"{args.lock} ({plural(len(lock.pins), 'pin')})")
    if not args.quiet:
        print(f"# verified in {(time.perf_counter() - started) * 1000:.0f} ms", file=sys.stderr)
    return code


def verify_answer(args, request, pins, interpreter: str, probes=None):
    """Checks (1) and (2) on the pins a server answered ``request`` with (``venvsmith venv --server``), against the
    request's own index configuration read by this client; the target is the request's, else the interpreter the
    venv was built on (``interpreter``, checked to exist here; its probe kept in ``probes``, a
    :class:`~venvsmith.core.probe.ProbeCache`, when given); and (3) when the request requires attestations,
    verified here too. Returns the :class:`Verdict`."""
    from venvsmith.clients.verify import Lock, check_attestations, parse_requirements, pins_from_proto, verify
    from venvsmith.core.attestations import attestation_names
    from venvsmith.core.convert import target_from_spec
    from venvsmith.core.target import TargetEnvironment

    local = TargetEnvironment.from_interpreter(interpreter, cache=probes) if interpreter \
        else TargetEnvironment.from_local()
    target = target_from_spec(request.target, local)
    requirements = parse_requirements(request.requirements)
    names = attestation_names(request.options.require_attestations)
    with index_source(args, request.index) as source:
        verdict = verify(Lock("the server's answer", pins_from_proto(pins)), requirements, source, target)
        if names:
            check_attestations(verdict, names, source)
        return verdict

