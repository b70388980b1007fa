"""File formats of trajectories (TUM, KITTI, EuRoC), read by sources and eval, written by sinks."""
