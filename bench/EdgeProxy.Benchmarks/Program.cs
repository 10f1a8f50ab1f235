using BenchmarkDotNet.Running;

// `dotnet run -c Release --project bench/EdgeProxy.Benchmarks -- --filter '*'` runs everything;
// add `--job short` for a quick (less precise) run. Results land in BenchmarkDotNet.Artifacts/.
BenchmarkSwitcher.FromAssembly(typeof(EdgeProxy.Benchmarks.Fixtures).Assembly).Run(args);
