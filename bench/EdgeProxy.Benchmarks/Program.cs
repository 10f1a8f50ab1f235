using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

// `dotnet run -c Release --project bench/EdgeProxy.Benchmarks -- --filter '*'` runs everything;
// add `--job short` for a quick (less precise) run, `--inProcess` to skip the per-job rebuild.
// Results land in BenchmarkDotNet.Artifacts/. The build timeout is raised from 2 min because the
// generated project rebuilds the gateway, which takes longer than that on a busy 2-core box.
BenchmarkSwitcher.FromAssembly(typeof(EdgeProxy.Benchmarks.Fixtures).Assembly)
    .Run(args, ManualConfig.Create(DefaultConfig.Instance).WithBuildTimeout(TimeSpan.FromMinutes(10)));
