"""How good and how fast the system is: the data generator, evaluation, NAB, benchmarks and the demo."""
