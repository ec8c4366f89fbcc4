"""Pictures and labels that people hand in, made into what the networks take.

The service (serving/) and intake (lifecycle/) both prepare pictures, and both
must prepare them the same way: training and serving see the same pixels. So
this sits below both, and imports from neither."""
