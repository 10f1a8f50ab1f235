using System.Text.Json;

namespace EdgeProxy.Balancing;

/// <summary>
/// Keys an LLM request by the opening of its conversation, so every turn of one conversation hashes
/// alike and goes where its prefix already sits in a backend's KV cache (affinity "prefix").
/// A chat body (OpenAI <c>messages</c>, Ollama <c>/api/chat</c>) is keyed by its leading messages up to
/// and including the first user message: the system prompt and the conversation's first question,
/// which later turns repeat unchanged. Conversations that share only a system prompt get different
/// keys, so they spread over the fleet while each stays on its own backend. A prompt body
/// (<c>/v1/completions</c>, Ollama <c>/api/generate</c>) is keyed by its first
/// <see cref="PromptBlock"/> bytes and any top-level <c>system</c>.
/// The key reads only the first <see cref="PeekBytes"/> of the body (the rest streams on untouched)
/// and hashes at most <see cref="MaxContent"/> bytes of each message. A system prompt longer than
/// that still keys its conversations apart by their first questions, as long as the first question
/// lies within the peek; else the request has no key (the caller keys it by its client). Strings are
/// hashed as sent (escaped): one client sends one conversation the same way every turn. Stateless:
/// every replica computes the same key.
/// </summary>
internal static class ConversationKey
{
    /// <summary>How much of a request body is read ahead to find the key.</summary>
    public const int PeekBytes = 16 * 1024;

    /// <summary>Content bytes of one message (or prompt field) that a key hashes at most.</summary>
    public const int MaxContent = 8 * 1024;

    /// <summary>How much of a bare prompt keys it: a conversation replayed as one growing prompt keeps its opening block.</summary>
    public const int PromptBlock = 512;

    /// <summary>
    /// The key of <paramref name="body"/>, the first bytes of a JSON request body (all of it when
    /// <paramref name="complete"/>). False when they do not hold a conversation's opening (not a JSON
    /// object, no messages or prompt, or the first user message not within the bytes); the caller
    /// then keys by the client as for <c>client_ip</c>.
    /// </summary>
    public static bool TryCompute(ReadOnlySpan<byte> body, bool complete, out ulong key) => TryCompute(body, complete, out key, out _);

    /// <param name="opening">
    /// The key of what the conversation shares with others: its leading messages before the first
    /// user message (the system prompt), or a prompt body's <c>system</c>; the conversation key
    /// itself when it has none. A new conversation is placed by it, where that prefix is likely cached.
    /// </param>
    public static bool TryCompute(ReadOnlySpan<byte> body, bool complete, out ulong key, out ulong opening)
    {
        var hash = new Accumulator();
        var reader = new Utf8JsonReader(body, complete, default);
        var keyed = false;
        var shared = default(Accumulator);
        key = 0;
        opening = 0;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }
            while (!keyed && reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("messages"u8))
                {
                    keyed = reader.Read() && reader.TokenType == JsonTokenType.StartArray && ReadMessages(ref reader, ref hash, ref shared);
                    break;
                }
                if (reader.ValueTextEquals("prompt"u8) || reader.ValueTextEquals("system"u8))
                {
                    var prompt = reader.ValueTextEquals("prompt"u8);
                    if (!reader.Read() || reader.TokenType != JsonTokenType.String)
                    {
                        return false;
                    }
                    var text = reader.ValueSpan;
                    hash.Add(prompt ? (byte)'p' : (byte)'s', prompt && text.Length > PromptBlock ? text[..PromptBlock] : text);
                    if (!prompt)
                    {
                        shared = hash;
                    }
                    keyed = prompt;
                    continue;
                }
                if (!reader.TrySkip())
                {
                    break;
                }
            }
        }
        catch (JsonException)
        {
            // Malformed JSON: no key (the backend will answer the body).
            return false;
        }
        key = keyed ? hash.Value : 0;
        opening = !keyed ? 0 : shared.Length > 0 ? shared.Value : key;
        return keyed;
    }

    /// <summary>
    /// Hashes role and content of each message; true once the first user message is in.
    /// <paramref name="shared"/> is the hash of the messages before the first user message.
    /// </summary>
    private static bool ReadMessages(ref Utf8JsonReader reader, ref Accumulator hash, ref Accumulator shared)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            var before = hash;
            var user = false;
            var ended = false;
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.EndObject)
                {
                    ended = true;
                    break;
                }
                if (reader.ValueTextEquals("role"u8))
                {
                    if (!reader.Read())
                    {
                        return false;
                    }
                    user = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("user"u8);
                    hash.Add((byte)'r', reader.TokenType == JsonTokenType.String ? reader.ValueSpan : default);
                }
                else if (reader.ValueTextEquals("content"u8))
                {
                    if (!ReadContent(ref reader, ref hash))
                    {
                        return false;
                    }
                }
                else if (!reader.TrySkip())
                {
                    return false;
                }
            }
            if (user && ended)
            {
                shared = before;
                return true;
            }
            if (!ended)
            {
                return false;
            }
        }
        return false;
    }

    /// <summary>A string, or OpenAI's array of parts (every string inside counts, <see cref="MaxContent"/> bytes in all); false when the bytes end inside it.</summary>
    private static bool ReadContent(ref Utf8JsonReader reader, ref Accumulator hash)
    {
        if (!reader.Read())
        {
            return false;
        }
        if (reader.TokenType is not (JsonTokenType.StartArray or JsonTokenType.StartObject))
        {
            hash.Add((byte)'c', reader.TokenType == JsonTokenType.String ? reader.ValueSpan : default);
            return true;
        }
        var depth = reader.CurrentDepth;
        var budget = MaxContent;
        while (true)
        {
            if (!reader.Read())
            {
                return false;
            }
            if (reader.CurrentDepth == depth)
            {
                return true;   // the closing bracket
            }
            if (reader.TokenType == JsonTokenType.String)
            {
                var text = reader.ValueSpan;
                hash.Add((byte)'c', text[..Math.Min(text.Length, budget)]);
                budget -= Math.Min(text.Length, budget);
            }
        }
    }

    /// <summary>FNV-1a over tagged values (a tag byte before each, so moved boundaries hash apart), each capped at <see cref="MaxContent"/>.</summary>
    private struct Accumulator
    {
        private ulong _hash;

        public int Length { get; private set; }

        public readonly ulong Value => StableHash.Mix(_hash);

        public void Add(byte tag, ReadOnlySpan<byte> value)
        {
            if (Length == 0)
            {
                _hash = 14695981039346656037UL;
            }
            var take = Math.Min(value.Length, MaxContent);
            _hash = Step(_hash, tag);
            foreach (var b in value[..take])
            {
                _hash = Step(_hash, b);
            }
            Length += take + 1;
        }

        private static ulong Step(ulong hash, byte b) => (hash ^ b) * 1099511628211UL;
    }
}
