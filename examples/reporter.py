"""Example kernel: a non-critical reporter that reads the model and config every few seconds."""

import json
import pickle  # the example's own model file, verified by Grace
import time
from pathlib import Path

import grace.heartbeat

HERE = Path(__file__).resolve().parent
STARTED = time.time()


def leaking() -> bool:
    """The memory-leak fault hits the running process: a restart (a fresh process) clears it."""
    flag = HERE / "leak_memory"  # fault: `grace demo fault memory-leak`
    try:
        return flag.stat().st_mtime >= STARTED - 1.0
    except FileNotFoundError:
        return False


def main() -> None:
    grace.heartbeat.start("reporter")
    hoard: list[bytes] = []
    while True:
        if leaking() and not hoard:
            hoard.append(b"x" * (300 * 1024 * 1024))
        elif not (HERE / "leak_memory").exists():
            hoard.clear()
        try:
            model = pickle.loads((HERE / "models" / "model.pkl").read_bytes())  # noqa: S301
            settings = json.loads((HERE / "config" / "features.json").read_text())
            (HERE / "cache").mkdir(exist_ok=True)
            (HERE / "cache" / "report.json").write_text(json.dumps(
                {"weights": len(model["weights"]), "features": len(settings)}))
        except Exception as exc:  # noqa: BLE001 - a reporter keeps going; Grace sees the log
            with open(HERE / "logs" / "app.log", "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} ERROR reporter failed: {exc!r}\n")
        time.sleep(3)


if __name__ == "__main__":
    main()
