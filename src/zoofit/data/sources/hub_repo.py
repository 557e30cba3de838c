"""A hub dataset repo's files, through huggingface_hub's cache (offline from it with ``HF_HUB_OFFLINE=1``)."""

from __future__ import annotations

from pathlib import Path

from zoofit.errors import ZoofitError, first_line


def hub_snapshot(repo: str, where: str, patterns: list[str] | None = None) -> Path:
    """The local folder of the hub dataset repo ``repo`` (only its files matching ``patterns``, where given),
    downloaded into huggingface_hub's cache where needed; ``where`` names it in the one-line errors."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo, repo_type="dataset", allow_patterns=patterns))
    except RepositoryNotFoundError as error:
        raise ZoofitError(f"{where}: no hub dataset repo '{repo}' (or it is private); check its id") from error
    except LocalEntryNotFoundError as error:
        raise ZoofitError(
            f"{where}: not in the hub cache and the hub cannot be reached ({first_line(error)}); "
            "download it once online (unset HF_HUB_OFFLINE)"
        ) from error
    except (HfHubHTTPError, OSError) as error:
        raise ZoofitError(f"{where} could not be fetched from the hub: {first_line(error)}") from error
