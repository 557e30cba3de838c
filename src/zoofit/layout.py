"""The names of a run folder's files, given once for everything that writes or reads them (no imports: the CLI
uses them before torch loads)."""

SUMMARY = "summary.json"  # the run's results and settings
TRIALS = "trials.csv"  # one line per trial
MANIFEST = "ensemble.json"  # what rebuilding the ensemble needs
STUDENT = "student.json"  # what rebuilding the distilled student needs (the manifest of an ensemble of one)
RANKING = "ranking.json"  # {"ranked": the zoo, best first; "failed": models that failed, and why}
RANKING_CSV = "ranking.csv"
REPORT = "report.html"
LABELLED = "labelled.safetensors"  # the run's images' content digests, its labelled images' features (suggest)
DATA = "data.json"  # the fingerprint of the run's data: another dataset is refused
WRITER_LOCK = ".writer.lock"  # held by the one process writing the folder
WRITER = ".writer.json"  # that process's id and command line, for the message that refuses a second one
CONFIG = "config.yaml"  # every setting of the run (or bench), which replays it: zoofit run --config
