// The fleet benchmark (issue 16, part 6). One executable, two roles:
//   fleet backend --port P --id b1 [knobs]   a simulated vLLM-like inference backend
//   fleet load --url URL --backends b1=http://127.0.0.1:P1,... [knobs]   closed-loop multi-turn chat load
// bench/fleet.sh starts N backends, one proxy per policy, and one load run per policy.
using System.Globalization;

namespace EdgeProxy.Fleet;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.Error.WriteLine("usage: fleet backend --port P --id ID [--slots 8 --queue-cap 0 --block 16 --cache-blocks 2048 " +
                "--prefill-us 200 --prefill-base-ms 5 --decode-ms 6 --decode-slowdown 0.12 --chunk-tokens 2]\n" +
                "       fleet load --url URL --backends id=url,... [--sessions 32 --ips many|one --duration 30 --seed 1 " +
                "--think-min 0.1 --think-max 0.5 --max-turns 8 --system-prompts 4 --label L --row FILE --json FILE --turns FILE.csv " +
                "--kill-pid PID --kill-at S]");
            return 2;
        }
        var opts = Options.Parse(args.AsSpan(1));
        try
        {
            return args[0] switch
            {
                "backend" => await BackendServer.RunAsync(opts),
                "load" => await LoadGenerator.RunAsync(opts),
                _ => Fail($"unknown command '{args[0]}'"),
            };
        }
        catch (ArgumentException e)
        {
            return Fail(e.Message);
        }
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine("fleet: " + message);
        return 2;
    }
}

/// <summary>`--key value` pairs.</summary>
public sealed class Options
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public static Options Parse(ReadOnlySpan<string> args)
    {
        var o = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"expected --key value, found '{args[i]}'");
            }
            o._values[args[i][2..]] = args[++i];
        }
        return o;
    }

    public string Str(string key, string def) => _values.TryGetValue(key, out var v) ? v : def;

    public string? StrOrNull(string key) => _values.TryGetValue(key, out var v) && v.Length > 0 ? v : null;

    public int Int(string key, int def) => _values.TryGetValue(key, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : def;

    public double Dbl(string key, double def) => _values.TryGetValue(key, out var v) ? double.Parse(v, CultureInfo.InvariantCulture) : def;
}

/// <summary>The simulated tokenizer both sides share: one word is one token; a message is a role
/// marker token followed by its words. A prompt's blocks are keyed by a hash of the whole prefix up
/// to the block's end (vLLM's chained block hashes).</summary>
public static class Tokens
{
    public const string System = "<|system|>";
    public const string User = "<|user|>";
    public const string Assistant = "<|assistant|>";

    public static ulong Hash(ReadOnlySpan<char> word)
    {
        var h = 14695981039346656037UL;
        foreach (var c in word)
        {
            h = (h ^ c) * 1099511628211UL;
        }
        return h;
    }

    public static void AddWords(List<ulong> into, string text)
    {
        var s = text.AsSpan();
        var i = 0;
        while (i < s.Length)
        {
            while (i < s.Length && s[i] == ' ')
            {
                i++;
            }
            var start = i;
            while (i < s.Length && s[i] != ' ')
            {
                i++;
            }
            if (i > start)
            {
                into.Add(Hash(s[start..i]));
            }
        }
    }

    /// <summary>Chained prefix hashes, one per full block.</summary>
    public static ulong[] BlockKeys(List<ulong> tokens, int block)
    {
        var keys = new ulong[tokens.Count / block];
        var h = 0xcbf29ce484222325UL;
        for (var i = 0; i < keys.Length * block; i++)
        {
            h = (h ^ tokens[i]) * 0x100000001b3UL;
            h ^= h >> 29;
            if ((i + 1) % block == 0)
            {
                keys[i / block] = h;
            }
        }
        return keys;
    }
}

/// <summary>A fixed pseudo-word vocabulary (no quotes, no backslashes, no spaces inside a word).</summary>
public static class Vocab
{
    private static readonly string[] Syllables =
        ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qui", "dor", "fen", "gal", "hus", "jet",
         "bri", "cos", "dra", "elm", "fyr", "gon", "hal", "ist", "jun", "kel", "lum", "mor", "nix", "orb", "pel", "rho"];

    public static readonly string[] Words = Build(4096);

    private static string[] Build(int n)
    {
        var rng = new Random(12345);
        var words = new string[n];
        for (var i = 0; i < n; i++)
        {
            var k = 1 + rng.Next(3);
            var w = "";
            for (var j = 0; j < k; j++)
            {
                w += Syllables[rng.Next(Syllables.Length)];
            }
            words[i] = w;
        }
        return words;
    }

    public static string Text(Random rng, int count)
    {
        var sb = new System.Text.StringBuilder(count * 7);
        for (var i = 0; i < count; i++)
        {
            if (i > 0)
            {
                sb.Append(' ');
            }
            sb.Append(Words[rng.Next(Words.Length)]);
        }
        return sb.ToString();
    }
}
