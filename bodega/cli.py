"""``python -m bodega launch [--model PATH] [--config FILE] [--host] [--port]``."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from bodega import fast_send, large_bodies
from bodega.app import create_app
from bodega.catalog_presets.models import preset_specs
from bodega.daemon import service
from bodega.daemon.discovery import (
    bound_port,
    load_env_file,
    remove_port_file,
    shutdown_when_idle,
    write_port_file,
)
from bodega.daemon.notify import Notifier
from bodega.daemon.reload import ConfigReloader, apply_sections
from bodega.errors import BodegaError
from bodega.registry.handler_env import handler_env
from bodega.registry.memory import default_budget_mb
from bodega.registry.registry import Registry, sweep_stale
from bodega.settings import CONFIG_ENV, ConfigError, Settings, build_settings
from bodega.telemetry.logs import configure_logging
from bodega.telemetry.metrics import Metrics
from bodega.telemetry.requests import RequestTracker

log = logging.getLogger("bodega")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bodega", description="A local OpenAI-compatible inference server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    launch = commands.add_parser("launch", help="start the server")
    launch.add_argument("--model", help="a model to serve (GGUF file or model folder)")
    launch.add_argument("--model-id", help="the id clients use for --model (default: file stem)")
    launch.add_argument("--config", help=f"config.yaml (default: ${CONFIG_ENV})")
    launch.add_argument("--host", help="address to bind (default $HOST, else 127.0.0.1)")
    launch.add_argument("--port", type=int, help="port to bind (default $PORT, else 44468)")
    launch.add_argument(
        "--device", help="cpu, mps, cuda, cuda:N or auto (default $MODEL_DEVICE, else auto)"
    )
    launch.add_argument(
        "--data-dir", help="where RAG indexes live (default: the user data dir, per platformdirs)"
    )
    launch.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING, ... (default $LOG_LEVEL, else INFO)"
    )
    launch.add_argument(
        "--log-format", choices=("text", "json"), help="text (default) or one JSON object a line"
    )
    launch.add_argument(
        "--access-log", choices=("on", "off"), help="a log line per request (default on)"
    )
    launch.add_argument(
        "--metrics", choices=("on", "off"), help="GET /metrics and its bookkeeping (default on)"
    )
    launch.add_argument(
        "--log-prompts", action="store_true", help="log prompts and answers (off by default)"
    )
    service = commands.add_parser("service", help="install the server as a system service")
    service.add_argument("action", choices=("install", "uninstall", "status"))
    service.add_argument("--user", action="store_true", help="a per-user service")
    service.add_argument("--config", help="the config.yaml the service runs with")
    service.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests write elsewhere
    convert = commands.add_parser("convert", help="convert a GGUF file to an MLX model folder")
    convert.add_argument("gguf_path", metavar="GGUF_PATH")
    convert.add_argument("out_dir", metavar="OUT_DIR")
    convert.add_argument("--dtype", help="dequantize to float32/float16/bfloat16")
    convert.add_argument("--force", action="store_true", help="replace an existing OUT_DIR")
    return parser


def manage_service(args: argparse.Namespace) -> int:
    """``bodega service install|uninstall|status``."""
    root = Path(args.root)
    if args.action == "install":
        config = Path(args.config) if args.config else None
        if config is not None and not config.is_file():
            print(f"bodega: error: config file {config} does not exist", file=sys.stderr)
            return 2
        path = service.install(config, user=args.user, root=root)
        manager = (
            "launchctl load"
            if sys.platform == "darwin"
            else (f"systemctl {'--user ' if args.user else ''}enable --now {service.UNIT_NAME}")
        )
        print(f"wrote {path}; start it with: {manager}")
    elif args.action == "uninstall":
        print("removed" if service.uninstall(user=args.user, root=root) else "not installed")
    else:
        print(service.status(user=args.user, root=root))
    return 0


def convert(args: argparse.Namespace) -> int:
    """Run the converter in a subprocess: this package never imports MLX."""
    command = [sys.executable, "-m", "handlers.convert", args.gguf_path, args.out_dir]
    command += ["--dtype", args.dtype] if args.dtype else []
    command += ["--force"] if args.force else []
    return subprocess.run(command, env=handler_env("mlx"), check=False).returncode


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, validate the configuration, serve."""
    args = _parser().parse_args(argv)
    if args.command == "convert":
        return convert(args)
    if args.command == "service":
        return manage_service(args)
    # The LLM Service's .env: variables the environment lacks, before anything reads them.
    dotenv = load_env_file(Path(".env"), os.environ)
    log_level = (
        args.log_level or os.environ.get("LOG_LEVEL") or os.environ.get("INFERENCE_LOG_LEVEL")
    ) or "INFO"
    configure_logging(log_level, args.log_format or "text")
    if dotenv:
        log.info("read %s from .env", ", ".join(dotenv))
    try:
        settings = build_settings(
            config_path=args.config,
            model_path=args.model,
            model_id=args.model_id,
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            device=args.device,
        )
    except ConfigError as exc:
        print(f"bodega: error: {exc}", file=sys.stderr)
        return 2
    flags = {
        "log_format": args.log_format,
        "access_log": None if args.access_log is None else args.access_log == "on",
        "metrics": None if args.metrics is None else args.metrics == "on",
        "log_prompts": True if args.log_prompts else None,
    }
    server = msgspec.structs.replace(
        settings.server, **{k: v for k, v in flags.items() if v is not None}
    )
    settings = msgspec.structs.replace(settings, server=server)
    configure_logging(log_level, server.log_format)
    try:
        return trio.run(serve, settings)
    except KeyboardInterrupt:
        return 130


async def _watch_signals(stop: trio.Event, notifier: Notifier) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: shutting down", signal.Signals(signum).name)
            notifier.send("STOPPING=1", "STATUS=draining")
            stop.set()
            return


async def _reload_on_sighup(reloader: ConfigReloader, registry: Registry) -> None:
    with trio.open_signal_receiver(signal.SIGHUP) as signals:
        async for _ in signals:
            log.info("received SIGHUP: reloading %s", reloader.path)
            await reloader.reload(registry)


def _status(registry: Registry) -> str:
    """The STATUS= line: how many models run."""
    models = registry.models
    running = sum(1 for m in models if m.status == "running")
    return f"{running} of {len(models)} models running"


async def serve(settings: Settings) -> int:
    """Load the configured models and serve HTTP until SIGINT or SIGTERM."""
    for name in sweep_stale():
        log.info("removed stale %s", name)
    stop = trio.Event()
    notifier = Notifier()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, stop, notifier)
        server = settings.server
        registry = Registry(
            nursery,
            load_timeout=server.load_timeout,
            auto_download=server.auto_download,
            load_on_demand=server.load_on_demand,
            max_loaded_models=server.max_loaded_models,
            metrics=Metrics() if server.metrics else None,
            log_prompts=server.log_prompts,
            memory_budget_mb=server.memory_budget_mb or default_budget_mb(),
        )
        nursery.start_soon(registry.expire_forever)
        port_file: Path | None = None
        port: int | None = None
        reloader: ConfigReloader | None = None
        if settings.config_path is not None:
            reloader = ConfigReloader(settings.config_path, settings.models)
            nursery.start_soon(_reload_on_sighup, reloader, registry)
        try:
            configured = {s.id for s in settings.models}
            for spec in [*settings.models, *preset_specs(settings.catalog, configured)]:
                log.info("loading %s from %s", spec.id, spec.model_path)
                with trio.CancelScope() as loading:
                    nursery.start_soon(_cancel_when, stop, loading)
                    await registry.load(spec)
                if loading.cancelled_caught:
                    return 130
            config = HypercornConfig()
            config.bind = [f"{settings.server.host}:{settings.server.port}"]
            config.graceful_timeout = settings.server.graceful_timeout
            config.accesslog = None
            app = create_app(settings, registry)
            if reloader is not None:
                reloader.on_reload = functools.partial(apply_sections, app, reloader.path)
            fast_send.install()
            large_bodies.install()
            log.info("serving on http://%s:%d", settings.server.host, settings.server.port)
            # Hypercorn runs in a nursery of its own: leaving it waits for its
            # graceful drain (running streams finish) before handlers stop.
            async with trio.open_nursery() as http:
                binds = await http.start(
                    functools.partial(hypercorn_serve, app, config, shutdown_trigger=stop.wait)
                )
                notifier.send("READY=1", f"STATUS={_status(registry)}")
                nursery.start_soon(notifier.watchdog, lambda: _status(registry))
                port = bound_port(binds)
                if server.port_file and port is not None:
                    port_file = Path(server.port_file).absolute()
                    write_port_file(port_file, port)
                if server.shutdown_timeout:
                    tracker: RequestTracker = app.extensions["bodega.requests"]
                    nursery.start_soon(
                        shutdown_when_idle,
                        server.shutdown_timeout,
                        lambda: tracker.in_flight,
                        lambda: tracker.last_request,
                        stop,
                    )
            return 0
        except BodegaError as exc:
            log.error("cannot start: %s", exc.message)
            return 1
        finally:
            if port_file is not None and port is not None:
                remove_port_file(port_file, port)
            with trio.CancelScope(shield=True):
                await registry.stop_all()
            nursery.cancel_scope.cancel()


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
