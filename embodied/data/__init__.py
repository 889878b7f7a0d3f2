"""Datasets: the on-disk episode format, collection (expert demos, DAgger rollouts), LeRobot export/import."""
