using System.Globalization;

namespace EdgeProxy.Health;

/// <summary>
/// Reads an inference engine's batch from its Prometheus text metrics: sequences running and requests
/// waiting in its own queue, summed over label sets. Gauges of vLLM, SGLang, llama.cpp's server and
/// TGI are known; an engine with none of them (Ollama) has nothing to read.
/// </summary>
internal static class EngineMetrics
{
    private static readonly (string Running, string Waiting)[] Gauges =
    [
        ("vllm:num_requests_running", "vllm:num_requests_waiting"),
        ("sglang:num_running_reqs", "sglang:num_queue_reqs"),
        ("llamacpp:requests_processing", "llamacpp:requests_deferred"),
        ("tgi_batch_current_size", "tgi_queue_size"),
    ];

    /// <summary>The first engine whose two gauges are both in <paramref name="text"/>: (running, waiting); null when none is.</summary>
    public static (int Running, int Waiting)? Read(ReadOnlySpan<char> text)
    {
        Span<double> sums = stackalloc double[Gauges.Length * 2];
        Span<bool> seen = stackalloc bool[Gauges.Length * 2];
        foreach (var range in text.Split('\n'))
        {
            var line = text[range].TrimEnd('\r');
            if (line.IsEmpty || line[0] == '#')
            {
                continue;
            }
            var nameEnd = line.IndexOfAny('{', ' ');
            if (nameEnd <= 0)
            {
                continue;
            }
            var index = IndexOf(line[..nameEnd]);
            if (index < 0)
            {
                continue;
            }
            // The value follows the labels (which may hold spaces inside quotes) or the name.
            var rest = line[nameEnd] == '{' ? line[(line.LastIndexOf('}') + 1)..] : line[nameEnd..];
            rest = rest.TrimStart(' ');
            var valueEnd = rest.IndexOf(' ');
            if (double.TryParse(valueEnd < 0 ? rest : rest[..valueEnd], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value) && value >= 0)
            {
                sums[index] += value;
                seen[index] = true;
            }
        }
        for (var engine = 0; engine < Gauges.Length; engine++)
        {
            if (seen[2 * engine] && seen[2 * engine + 1])
            {
                return ((int)Math.Min(sums[2 * engine], int.MaxValue), (int)Math.Min(sums[2 * engine + 1], int.MaxValue));
            }
        }
        return null;
    }

    private static int IndexOf(ReadOnlySpan<char> name)
    {
        for (var engine = 0; engine < Gauges.Length; engine++)
        {
            if (name.SequenceEqual(Gauges[engine].Running))
            {
                return 2 * engine;
            }
            if (name.SequenceEqual(Gauges[engine].Waiting))
            {
                return 2 * engine + 1;
            }
        }
        return -1;
    }
}
