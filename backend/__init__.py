"""PART Studio's HTTP service: run registry, CAM / eps-map / attack endpoints and persistent jobs."""
