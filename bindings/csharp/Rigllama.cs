// Rigllama.dll: P/Invoke bindings for rigllama.h, written the way Unity and Mono code talks to
// native plugins: blittable structs (only integers, floats and IntPtr, so they are passed by
// reference with no marshalling copy), strings converted to and from UTF-8 by hand (Mono's
// and Unity's LPUTF8Str support varies; Encoding.UTF8 is everywhere), callbacks as static
// methods tagged [MonoPInvokeCallback] whose delegates are kept alive in static fields, and
// the job API polled once per frame instead of callbacks from a native thread. Engine and Job
// at the end wrap the handles as IDisposable for code that wants no IntPtr. Engine.ListDevices
// and Engine.Estimate (v0.3) answer before any engine exists, as Device and MemoryEstimate
// objects read from the library's JSON by Json.Parse (no JSON library is referenced).
//
// The native library is imported as "rigllama". In the NuGet package it is
// runtimes/linux-x64/native/librigllama.so: .NET (Core) resolves it from there; Mono reads
// lib/netstandard2.0/Rigllama.dll.config, whose <dllmap> points there; Unity takes it as a
// plugin. Otherwise librigllama.so is found beside the program or on LD_LIBRARY_PATH.
//
// Built with Mono's mcs against the .NET Framework 4.6.1 reference assemblies (the API level
// of .NET Standard 2.0), so it references mscorlib: Mono and Unity load it as is, .NET through
// its mscorlib facade (bindings/csharp/build says why it is not a netstandard.dll build).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace AOT
{
    // Unity and Xamarin define this; Mono's and IL2CPP's AOT compilers look for it by name to
    // emit a native entry point for a static method that native code calls back.
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type delegateType) { DelegateType = delegateType; }
        public Type DelegateType { get; private set; }
    }
}

namespace Rigllama
{
    public enum Status
    {
        Ok = 0, NullArgument = 1, InvalidArgument = 2, ModelLoadFailed = 3, ContextOverflow = 4,
        Cancelled = 5, Busy = 6, ShutDown = 7, Internal = 8,
    }

    // v0.2: Reasoning (text is a piece of the model's thinking), ToolCall (text is one whole
    // call as JSON: {"id":"...","name":"...","arguments":{...}}) and Logprobs (only when the
    // request's n_logprobs > 0: text is a JSON array of OpenAI logprobs.content entries,
    // {"token","id","logprob","bytes","top_logprobs":[...]}, for the tokens generated since the
    // previous one, sent before the events carrying their text).
    public enum EventKind { None = 0, Text = 1, Done = 2, Error = 3, Reasoning = 4, ToolCall = 5, Logprobs = 6 }

    public enum FinishReason { Stop = 0, Length = 1, Callback = 2, ToolCalls = 3 }

    public enum ContextOverflow { Fail = 0, Shift = 1 }

    // v0.2: whether the model may call the request's tools; Required constrains it to at least
    // one call valid against the tool's schema, so even a small model produces one.
    public enum ToolChoice { Auto = 0, None = 1, Required = 2 }

    // v0.2: the chat template's thinking switch.
    public enum Reasoning { Auto = 0, Off = 1, On = 2 }

    // v0.2: the KV cache's data types (EngineOptions.type_k, type_v); a quantized type_v needs
    // flash attention Auto or On.
    public enum KvType { F16 = 0, F32 = 1, BF16 = 2, Q8_0 = 3, Q4_0 = 4, Q4_1 = 5, Q5_0 = 6, Q5_1 = 7, IQ4_NL = 8 }

    // v0.2: EngineOptions.flash_attention.
    public enum FlashAttention { Auto = 0, Off = 1, On = 2 }

    // v0.3: EngineOptions.thread_priority. Low: the engine's threads yield to the host's, so a
    // game's frame loop keeps its frames.
    // Not "ThreadPriority": System.Threading and UnityEngine each have one.
    public enum EngineThreadPriority { Normal = 0, Low = 1 }

    // v0.2: Request.mirostat; it replaces top-k, typical-p, top-p, min-p and XTC.
    public enum Mirostat { Off = 0, V1 = 1, V2 = 2 }

    // v0.3: Engine.Tokenize's and Detokenize's flags (RIGLLAMA_TOKENIZE_*). AddSpecial: tokenize
    // adds BOS/EOS as the vocabulary wants, detokenize leaves out the BOS/EOS such a tokenization
    // added. ParseSpecial: tokenize makes special-token text ("<start_of_turn>") its token, else
    // it is plain text; detokenize writes special tokens out as their text, else as nothing.
    // RawPrompt, both (the default): what a raw prompt is tokenized with, and its exact inverse.
    [Flags]
    public enum TokenizeFlags : uint { None = 0, AddSpecial = 1, ParseSpecial = 2, RawPrompt = AddSpecial | ParseSpecial }

    // The C structs, field for field. x86-64 layout (Native.CheckLayout compares it with the
    // sizes and offsets that tests/c/test_contract prints).
    [StructLayout(LayoutKind.Sequential)]
    public struct EngineOptions
    {
        public uint struct_size;
        public uint n_ctx;
        public uint n_batch;
        public int n_threads;
        public int n_gpu_layers;
        public IntPtr model_path;          // const char *, UTF-8
        public IntPtr chat_template;       // const char *, UTF-8
        public IntPtr on_progress;         // rigllama_progress_callback
        public IntPtr progress_user_data;
        public int context_overflow;       // v0.2: (int)ContextOverflow
        public uint n_seq;                 // v0.2: requests served at once, 1..64 (default 1)
        public int type_k;                 // v0.2: (int)KvType (default F16)
        public int type_v;                 // v0.2: (int)KvType (default F16)
        public int flash_attention;        // v0.2: (int)FlashAttention (default Auto)
        public uint fit;                   // v0.2: 0/1, llama.cpp's fitting picks GPU layers and n_ctx
        public uint fit_min_ctx;           // v0.2: the smallest context the fit may choose (default 4096)
        public IntPtr fit_margins_mib;     // v0.2: const uint32_t *, MiB to leave free per device
        public UIntPtr n_fit_margins_mib;  // v0.2: size_t
        // v0.2: state checkpoints of recurrent and hybrid models (others ignore both): the most
        // bytes they hold together (default 512 MiB) and the most kept (default 32; 0 = none).
        public ulong max_checkpoint_bytes; // v0.2: uint64_t
        public uint max_checkpoints;       // v0.2
        // v0.2: const char *, UTF-8 path of a multimodal projector (mmproj GGUF) for this model,
        // or IntPtr.Zero (default); a library built without the mtmd cargo feature refuses it
        // with Status.InvalidArgument.
        public IntPtr mmproj_path;
        public int thread_priority;        // v0.3: (int)EngineThreadPriority (default Normal)
        // v0.3: const char *, comma-separated host:port of llama.cpp rpc-servers, or IntPtr.Zero
        // (default); needs the rpc cargo feature. Private networks only (no auth, no TLS).
        public IntPtr rpc_servers;
        // v0.3: a model inside a larger file: where its GGUF starts and its length (0 = to the
        // end); 0/0 (default) = the file is the GGUF.
        public ulong model_offset;
        public ulong model_size;
        // v0.3: 1 = llama.cpp's --no-repack (default 0).
        public int no_repack;
        // v0.3: const char *, UTF-8: the devices that take the offloaded layers, comma-separated
        // names as Engine.ListDevices reports them ("Vulkan0", "CUDA0,CUDA1"; "CPU" is the CPU),
        // in that order; "none" = the CPU only; IntPtr.Zero (default) = llama.cpp's choice (every
        // GPU, the CPU when a GPU cannot start). The Engine constructor and Engine.Estimate set it
        // from a string[] devices. A name that is not there: InvalidArgument naming it and the
        // devices there are.
        public IntPtr devices;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Request
    {
        public uint struct_size;
        public uint max_tokens;
        public float temperature;
        public float top_p;
        public int top_k;
        public float min_p;
        public float repeat_penalty;
        public uint seed;
        public uint raw_prompt;            // 0/1: no bool crosses the boundary
        public IntPtr prompt;
        public IntPtr system_prompt;
        public IntPtr messages_json;
        public IntPtr stop;                // const char *const *
        public UIntPtr n_stop;             // size_t
        public int priority;               // v0.2: higher runs first (default 0)
        public IntPtr grammar;             // v0.2: GBNF the reply must match, UTF-8
        public IntPtr json_schema;         // v0.2: the reply is one JSON value valid against it
        public IntPtr tools_json;          // v0.2: OpenAI tools array JSON
        public int tool_choice;            // v0.2: (int)ToolChoice
        public int reasoning;              // v0.2: (int)Reasoning
        public float presence_penalty;     // v0.2 sampling, from here to mirostat_eta
        public float frequency_penalty;
        public int penalty_last_n;
        public float dry_multiplier;
        public float dry_base;
        public int dry_allowed_length;
        public int dry_penalty_last_n;
        public float xtc_probability;
        public float xtc_threshold;
        public float typical_p;
        public float top_n_sigma;
        public int mirostat;               // (int)Mirostat
        public float mirostat_tau;
        public float mirostat_eta;
        public uint n_logprobs;            // v0.2: 1..20 = EventKind.Logprobs events, this many alternatives
        public IntPtr logit_bias_json;     // v0.2: {"token id": bias} or [[id or text, bias or false]], UTF-8
        public IntPtr dry_sequence_breakers; // v0.2: const char *const *
        public UIntPtr n_dry_sequence_breakers; // v0.2: size_t
        public uint draft_max;             // v0.2: prompt-lookup speculation, up to this many guesses (0 = off, <= 64)
        public IntPtr prompt_tokens;       // v0.3: const int32_t*: the prompt as token ids (prompt/messages NULL)
        public UIntPtr n_prompt_tokens;    // v0.3: size_t
        public IntPtr suffix;              // v0.3: fill-in-the-middle, the text after the gap (raw_prompt 1), UTF-8
        // v0.3: adaptive-p (llama.cpp's adaptive_p sampler): the draw favours tokens near this
        // probability, adapting to what was chosen; it ends the chain in place of the plain draw.
        // In [0, 1]; negative = off (the default, -1). Not with mirostat; no effect at temperature 0.
        public float adaptive_target;
        public float adaptive_decay;       // v0.3: adaptive-p remembers about 1 / (1 - decay) tokens; [0, 0.99], default 0.90
        // v0.3: tokens the reply may think for: -1 = unlimited (the default), 0 = no thinking, N.
        // When the template's thinking block (Qwen3's and DeepSeek-R1's <think>, ...) reaches it,
        // the engine writes the block's end tag, as llama.cpp's reasoning-budget sampler does, and
        // the answer follows. A template without a thinking block has nothing to limit; with a
        // grammar or json_schema the budget is not applied. Below -1: InvalidArgument.
        public int reasoning_budget;
        // v0.3: this request's own LoRA adapters, in place of the engine-wide ones: lora_ids
        // (const uint32_t *: ids from AddLora), lora_scales (const float *: one per id; 0 = no
        // effect, 1 = as trained) and n_loras (size_t; at most 64). lora_ids IntPtr.Zero (the
        // default) = the engine-wide adapters at their engine-wide scales; set = exactly these
        // adapters at these scales, every other loaded adapter off for this request; set with
        // n_loras 0 = no adapter at all. LoraSet.Apply fills in all three. An id not loaded, an
        // id given twice or a scale outside ±100: InvalidArgument naming it ("lora_ids[0] = 77");
        // lora_scales IntPtr.Zero with n_loras > 0: NullArgument.
        public IntPtr lora_ids;
        public IntPtr lora_scales;
        public UIntPtr n_loras;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Usage
    {
        public uint struct_size;
        public int finish_reason;
        public uint prompt_tokens;
        public uint cached_prompt_tokens;
        public uint completion_tokens;
        public uint seed;
        public double prompt_ms;
        public double generation_ms;
        public uint dropped_tokens;        // v0.2
        public uint drafted_tokens;        // v0.2: guessed by prompt-lookup speculation and evaluated
        public uint accepted_tokens;       // v0.2: of those, confirmed by the sampler
        public uint image_tokens;          // v0.2: of prompt_tokens, those standing for images
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Event
    {
        public uint struct_size;
        public int kind;
        public int status;
        public IntPtr text;                // borrowed until the next poll
        public UIntPtr text_len;
        public IntPtr message;
    }

    // v0.3: one adapter of a request's own LoRA set (LoraSet): an id from AddLora and the scale
    // it has for that request.
    public struct LoraScale
    {
        public uint Id;
        public float Scale;
        public LoraScale(uint id, float scale) { Id = id; Scale = scale; }
    }

    // v0.3: a request's own LoRA adapters, copied into unmanaged memory for Request.lora_ids,
    // lora_scales and n_loras. Apply(ref request) points a request at them: that request gets
    // exactly these adapters at these scales, every other loaded adapter off (the engine-wide
    // scales are left as they are); new LoraSet() (no adapters) is no adapter at all, the base
    // model. LoraSet.EngineWide(ref request) undoes it (the default: the engine-wide adapters at
    // their engine-wide scales). The memory lives until Dispose, so keep the set (a using block)
    // until the calls that use the request have returned; the library copies it during each.
    // Requests with different sets never share a decode (they take turns), and a cached prefix
    // is reused only by requests with the same set.
    public sealed class LoraSet : IDisposable
    {
        IntPtr ids, scales;
        readonly int count;

        public LoraSet(params LoraScale[] adapters)
        {
            count = adapters == null ? 0 : adapters.Length;
            // Room for one id at least, so that an empty set reaches C as set (no adapter at
            // all) rather than as NULL (the engine-wide adapters).
            ids = Marshal.AllocHGlobal(Math.Max(count, 1) * sizeof(uint));
            if (count > 0)
            {
                scales = Marshal.AllocHGlobal(count * sizeof(float));
                var idValues = new int[count];
                var scaleValues = new float[count];
                for (int i = 0; i < count; i++)
                {
                    idValues[i] = unchecked((int)adapters[i].Id);
                    scaleValues[i] = adapters[i].Scale;
                }
                Marshal.Copy(idValues, 0, ids, count);
                Marshal.Copy(scaleValues, 0, scales, count);
            }
        }

        public int Count { get { return count; } }

        // Points request's lora_ids, lora_scales and n_loras at this set.
        public void Apply(ref Request request)
        {
            if (ids == IntPtr.Zero) throw new ObjectDisposedException("LoraSet");
            request.lora_ids = ids;
            request.lora_scales = scales;
            request.n_loras = (UIntPtr)count;
        }

        // Clears request's lora_ids, lora_scales and n_loras: the engine-wide adapters again.
        public static void EngineWide(ref Request request)
        {
            request.lora_ids = IntPtr.Zero;
            request.lora_scales = IntPtr.Zero;
            request.n_loras = UIntPtr.Zero;
        }

        public void Dispose()
        {
            Marshal.FreeHGlobal(ids);   // IntPtr.Zero: a no-op
            Marshal.FreeHGlobal(scales);
            ids = scales = IntPtr.Zero;
        }
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate int ProgressCallback(IntPtr userData, float progress);

    // v0.3: the smallest JSON reader the library's answers need (Describe's, ListDevices',
    // Estimate's), so that Rigllama.dll references nothing beyond mscorlib. Parse gives a
    // Dictionary<string, object> for an object, List<object> for an array, string, long for an
    // integer (ulong above long's range), double for another number, bool, or null. Malformed
    // text throws FormatException.
    public static class Json
    {
        public static object Parse(string text)
        {
            if (text == null) throw new ArgumentNullException("text");
            int i = 0;
            object value = ParseValue(text, ref i);
            SkipSpace(text, ref i);
            if (i != text.Length) throw new FormatException("text after the JSON value at " + i);
            return value;
        }

        static void SkipSpace(string s, ref int i)
        {
            while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
        }

        static void Take(string s, ref int i, char c)
        {
            SkipSpace(s, ref i);
            if (i >= s.Length || s[i] != c) throw new FormatException("expected '" + c + "' in JSON at " + i);
            i++;
        }

        // Whether the next character, after white space, is c (taken if so).
        static bool Next(string s, ref int i, char c)
        {
            SkipSpace(s, ref i);
            if (i < s.Length && s[i] == c) { i++; return true; }
            return false;
        }

        static object ParseValue(string s, ref int i)
        {
            SkipSpace(s, ref i);
            if (i >= s.Length) throw new FormatException("unexpected end of the JSON text");
            char c = s[i];
            if (c == '{')
            {
                i++;
                var members = new Dictionary<string, object>();
                if (Next(s, ref i, '}')) return members;
                do
                {
                    SkipSpace(s, ref i);
                    if (i >= s.Length || s[i] != '"') throw new FormatException("expected a key in a JSON object at " + i);
                    string key = ParseString(s, ref i);
                    Take(s, ref i, ':');
                    members[key] = ParseValue(s, ref i);
                } while (Next(s, ref i, ','));
                Take(s, ref i, '}');
                return members;
            }
            if (c == '[')
            {
                i++;
                var items = new List<object>();
                if (Next(s, ref i, ']')) return items;
                do items.Add(ParseValue(s, ref i)); while (Next(s, ref i, ','));
                Take(s, ref i, ']');
                return items;
            }
            if (c == '"') return ParseString(s, ref i);
            int start = i;
            while (i < s.Length && "+-.0123456789eEtruefalsn".IndexOf(s[i]) >= 0) i++;
            string word = s.Substring(start, i - start);
            if (word == "true") return true;
            if (word == "false") return false;
            if (word == "null") return null;
            long integer;
            ulong large;
            double number;
            if (word.IndexOfAny(new[] { '.', 'e', 'E' }) < 0)
            {
                if (long.TryParse(word, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out integer)) return integer;
                if (ulong.TryParse(word, NumberStyles.None, CultureInfo.InvariantCulture, out large)) return large;
            }
            if (word.Length > 0 && double.TryParse(word, NumberStyles.Float, CultureInfo.InvariantCulture, out number)) return number;
            throw new FormatException("bad JSON value at " + start + ": " + word);
        }

        // A string from its opening quote through its closing one.
        static string ParseString(string s, ref int i)
        {
            i++;
            var sb = new StringBuilder();
            while (true)
            {
                if (i >= s.Length) throw new FormatException("unterminated JSON string");
                char c = s[i++];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                if (i >= s.Length) throw new FormatException("unterminated JSON string");
                char e = s[i++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':   // UTF-16 code units: a surrogate pair's two escapes make its character
                        if (i + 4 > s.Length) throw new FormatException("bad \\u escape in a JSON string");
                        sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture));
                        i += 4;
                        break;
                    default: throw new FormatException("bad escape in a JSON string at " + (i - 1));
                }
            }
        }

        // Helpers for reading parsed objects.
        internal static Dictionary<string, object> Object(object value, string what)
        {
            var members = value as Dictionary<string, object>;
            if (members == null) throw new FormatException(what + " is not a JSON object");
            return members;
        }

        internal static object Member(Dictionary<string, object> members, string key)
        {
            object value;
            if (!members.TryGetValue(key, out value)) throw new FormatException("no \"" + key + "\" in the JSON object");
            return value;
        }

        internal static string String(Dictionary<string, object> members, string key) { return (string)Member(members, key); }

        internal static ulong UInt64(Dictionary<string, object> members, string key)
        {
            return Convert.ToUInt64(Member(members, key), CultureInfo.InvariantCulture);
        }

        internal static List<object> Array(object value, string what)
        {
            var items = value as List<object>;
            if (items == null) throw new FormatException(what + " is not a JSON array");
            return items;
        }
    }

    // v0.3: a device the library can use on this machine (Engine.ListDevices).
    public sealed class Device
    {
        // llama.cpp's name for it ("CPU", "Vulkan0", "CUDA0"): what the devices option takes.
        public string Name { get; private set; }
        // The driver's description ("NVIDIA GeForce RTX 4070", the CPU's model name).
        public string Description { get; private set; }
        // "cpu", "gpu" (discrete), "igpu" (integrated, sharing the host's memory) or "accel" (an
        // accelerator beside the CPU, holding no layers of its own).
        public string Type { get; private set; }
        // Bytes, as the driver reports them now (the host's RAM for the CPU).
        public ulong MemoryTotal { get; private set; }
        public ulong MemoryFree { get; private set; }

        public static Device FromJson(object parsed)
        {
            var m = Json.Object(parsed, "a device");
            return new Device
            {
                Name = Json.String(m, "name"), Description = Json.String(m, "description"), Type = Json.String(m, "type"),
                MemoryTotal = Json.UInt64(m, "memory_total"), MemoryFree = Json.UInt64(m, "memory_free"),
            };
        }
    }

    // v0.3: bytes of memory by purpose, as llama.cpp accounts them: the weights, the KV cache and
    // the compute buffers (Describe's "memory", a device's, an estimate's total).
    public struct MemoryUse
    {
        public ulong ModelBytes;
        public ulong KvCacheBytes;
        public ulong ComputeBytes;

        public static MemoryUse FromJson(object parsed)
        {
            var m = Json.Object(parsed, "a memory use");
            return new MemoryUse
            {
                ModelBytes = Json.UInt64(m, "model_bytes"), KvCacheBytes = Json.UInt64(m, "kv_cache_bytes"),
                ComputeBytes = Json.UInt64(m, "compute_bytes"),
            };
        }
    }

    // v0.3: what a model holds on one device: MemoryEstimate.Devices and Engine.Devices().
    public sealed class DeviceUse
    {
        public string Name { get; private set; }
        public string Type { get; private set; }   // as Device.Type
        // The model's layers placed on it (llama.cpp's numbering; the output layer is the
        // model's layer count). Possibly empty for the CPU.
        public uint[] Layers { get; private set; }
        // The bytes on this device, planned (Estimate) or allocated (Devices()).
        public MemoryUse Memory { get; private set; }
        // The device's memory and free memory (at load, or now for an estimate).
        public ulong MemoryTotal { get; private set; }
        public ulong MemoryFree { get; private set; }

        public static DeviceUse FromJson(object parsed)
        {
            var m = Json.Object(parsed, "a device use");
            var layers = Json.Array(Json.Member(m, "layers"), "layers");
            var use = new DeviceUse
            {
                Name = Json.String(m, "name"), Type = Json.String(m, "type"), Layers = new uint[layers.Count],
                Memory = MemoryUse.FromJson(Json.Member(m, "memory")),
                MemoryTotal = Json.UInt64(m, "memory_total"), MemoryFree = Json.UInt64(m, "memory_free"),
            };
            for (int i = 0; i < layers.Count; i++) use.Layers[i] = Convert.ToUInt32(layers[i], CultureInfo.InvariantCulture);
            return use;
        }

        internal static DeviceUse[] ArrayFromJson(object parsed)
        {
            var items = Json.Array(parsed, "devices");
            var uses = new DeviceUse[items.Count];
            for (int i = 0; i < items.Count; i++) uses[i] = FromJson(items[i]);
            return uses;
        }
    }

    // v0.3: what an engine with some options would allocate (Engine.Estimate).
    public sealed class MemoryEstimate
    {
        // The context the engine would have (the options' n_ctx, capped at the model's training
        // context).
        public uint NCtx { get; private set; }
        // Per device, the CPU (host memory) first.
        public DeviceUse[] Devices { get; private set; }
        // The sums over Devices.
        public MemoryUse Total { get; private set; }

        public static MemoryEstimate FromJson(object parsed)
        {
            var m = Json.Object(parsed, "an estimate");
            return new MemoryEstimate
            {
                NCtx = Convert.ToUInt32(Json.Member(m, "n_ctx"), CultureInfo.InvariantCulture),
                Devices = DeviceUse.ArrayFromJson(Json.Member(m, "devices")),
                Total = MemoryUse.FromJson(Json.Member(m, "total")),
            };
        }
    }

    public static class Native
    {
        const string Lib = "rigllama";

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern IntPtr rigllama_version();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern IntPtr rigllama_status_str(int status);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern IntPtr rigllama_last_error();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_options_init(ref EngineOptions options, UIntPtr structSize);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_request_init(ref Request request, UIntPtr structSize);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_usage_init(ref Usage usage, UIntPtr structSize);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_event_init(ref Event ev, UIntPtr structSize);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_create(ref EngineOptions options, out IntPtr engine);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern void rigllama_engine_destroy(IntPtr engine);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_complete(IntPtr engine, ref Request request, out IntPtr text, ref Usage usage);
        // v0.2: the reply as OpenAI-shaped message JSON (free with rigllama_string_free).
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_chat(IntPtr engine, ref Request request, out IntPtr messageJson, ref Usage usage);
        // v0.2: the exact prompt text for a request (free with rigllama_string_free).
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_apply_template(IntPtr engine, ref Request request, out IntPtr prompt);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_cancel(IntPtr engine);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_pause(IntPtr engine);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_resume(IntPtr engine);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_reset(IntPtr engine);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_count_tokens(IntPtr engine, ref Request request, out uint tokens);
        // The engine as JSON (free with rigllama_string_free).
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_describe(IntPtr engine, out IntPtr json);
        // v0.3: the devices, before any engine; what create with options would allocate (JSON, free
        // with rigllama_string_free).
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_list_devices(out IntPtr json);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_estimate(ref EngineOptions options, out IntPtr json);
        // v0.3: the directory of ggml's CPU modules (UTF-8), process-wide, before the first engine.
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_set_backend_dir(IntPtr dir);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern void rigllama_string_free(IntPtr text);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_submit(IntPtr engine, ref Request request, out IntPtr job);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_job_poll(IntPtr job, uint timeoutMs, ref Event ev);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_job_usage(IntPtr job, ref Usage usage);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_job_cancel(IntPtr job);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern void rigllama_job_free(IntPtr job);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_save_snapshot(IntPtr engine, ref Request request, out IntPtr data, out UIntPtr length);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_load_snapshot(IntPtr engine, byte[] data, UIntPtr length);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern void rigllama_bytes_free(IntPtr data);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_embed(IntPtr engine, IntPtr text, float[] embedding, UIntPtr capacity, out UIntPtr dims);

        // v0.3: token ids. text is len bytes of UTF-8 (not NUL-terminated); flags are (uint)TokenizeFlags.
        // detokenize's text is freed with rigllama_string_free.
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_tokenize(IntPtr engine, byte[] text, UIntPtr len, uint flags, int[] tokens, UIntPtr capacity, out UIntPtr n);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_detokenize(IntPtr engine, int[] tokens, UIntPtr n, uint flags, out IntPtr text);

        // v0.3: rerank. query and each document are UTF-8 (Utf8Alloc); scores has room for n floats.
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_rerank(IntPtr engine, IntPtr query, IntPtr[] documents, UIntPtr n, float[] scores);

        // v0.2: LoRA adapters. add_lora's path is UTF-8 (Utf8Alloc); each call empties the KV cache.
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_add_lora(IntPtr engine, IntPtr path, float scale, out uint loraId);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_set_lora_scale(IntPtr engine, uint loraId, float scale);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_remove_lora(IntPtr engine, uint loraId);

        // v0.3: control vectors. path is UTF-8 (Utf8Alloc); layerStart, layerEnd 0, 0 = every layer; each call empties the KV cache.
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_set_control_vector(IntPtr engine, IntPtr path, float strength, int layerStart, int layerEnd);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] public static extern int rigllama_engine_clear_control_vector(IntPtr engine);

        public static UIntPtr SizeOf<T>() where T : struct { return (UIntPtr)Marshal.SizeOf(typeof(T)); }

        // A NUL-terminated UTF-8 copy of s in unmanaged memory; free with Marshal.FreeHGlobal.
        public static IntPtr Utf8Alloc(string s)
        {
            if (s == null) return IntPtr.Zero;
            byte[] bytes = Encoding.UTF8.GetBytes(s);
            IntPtr p = Marshal.AllocHGlobal(bytes.Length + 1);
            Marshal.Copy(bytes, 0, p, bytes.Length);
            Marshal.WriteByte(p, bytes.Length, 0);
            return p;
        }

        // A copy of values in unmanaged memory (room for one at least, so that an empty array
        // reaches C as set, not as NULL); free with Marshal.FreeHGlobal.
        public static IntPtr Int32Alloc(int[] values)
        {
            if (values == null) return IntPtr.Zero;
            IntPtr p = Marshal.AllocHGlobal(Math.Max(values.Length, 1) * sizeof(int));
            Marshal.Copy(values, 0, p, values.Length);
            return p;
        }

        public static string Utf8Read(IntPtr p, int length)
        {
            if (p == IntPtr.Zero || length == 0) return "";
            byte[] bytes = new byte[length];
            Marshal.Copy(p, bytes, 0, length);
            return Encoding.UTF8.GetString(bytes);
        }

        public static string Utf8ReadZ(IntPtr p)
        {
            if (p == IntPtr.Zero) return "";
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            return Utf8Read(p, n);
        }

        public static string StatusText(int status) { return Utf8ReadZ(rigllama_status_str(status)); }

        // A library-owned string, copied and freed with rigllama_string_free.
        public static string TakeString(IntPtr text)
        {
            try { return Utf8ReadZ(text); }
            finally { rigllama_string_free(text); }
        }

        // v0.2: loads the LoRA adapter GGUF at path (made for this engine's model) and applies it
        // at scale (0 = no effect, 1 = as trained); returns its id. Throws RigllamaException
        // (InvalidArgument for an adapter of another model or a file that is not one).
        public static uint AddLora(IntPtr engine, string path, float scale)
        {
            IntPtr p = Utf8Alloc(path);
            try
            {
                uint loraId;
                Check(rigllama_engine_add_lora(engine, p, scale, out loraId));
                return loraId;
            }
            finally
            {
                Marshal.FreeHGlobal(p);   // the library copied it
            }
        }

        public static void SetLoraScale(IntPtr engine, uint loraId, float scale) { Check(rigllama_engine_set_lora_scale(engine, loraId, scale)); }

        public static void RemoveLora(IntPtr engine, uint loraId) { Check(rigllama_engine_remove_lora(engine, loraId)); }

        // v0.3: adds the control vector GGUF at path (direction.N tensors made for this engine's
        // model, as llama.cpp's cvector-generator writes them) times strength (finite, within
        // ±100; 0 = no effect) to the output of layers layerStart..layerEnd inclusive (1-based;
        // 0, 0 = every layer), replacing any set before; empties the KV cache. Throws
        // RigllamaException (InvalidArgument, with the reason) for a file that is not a control
        // vector, one made for a model of another width, or a layer range outside the model; the
        // engine keeps serving. Snapshots are refused while it is set.
        public static void SetControlVector(IntPtr engine, string path, float strength, int layerStart, int layerEnd)
        {
            IntPtr p = Utf8Alloc(path);
            try
            {
                Check(rigllama_engine_set_control_vector(engine, p, strength, layerStart, layerEnd));
            }
            finally
            {
                Marshal.FreeHGlobal(p);   // the library copied it
            }
        }

        // v0.3: removes the control vector, if one is set; empties the KV cache.
        public static void ClearControlVector(IntPtr engine) { Check(rigllama_engine_clear_control_vector(engine)); }

        // Throws with the last error if a call failed. Read it right away: it is per thread
        // and valid only until the next rigllama_ call on this thread.
        public static void Check(int status)
        {
            if (status != (int)Status.Ok)
                throw new RigllamaException((Status)status, Utf8ReadZ(rigllama_last_error()));
        }

        // The x86-64 sizes and offsets of the C structs (as tests/c/test_contract prints them).
        // Returns the mismatches; empty when the declarations above agree with the header.
        public static string CheckLayout()
        {
            if (IntPtr.Size != 8) return "";   // the numbers below are for 64-bit targets
            var sb = new StringBuilder();
            Expect(sb, typeof(EngineOptions), 176, "model_path", 24, "chat_template", 32, "on_progress", 40, "progress_user_data", 48, "context_overflow", 56, "n_seq", 60,
                   "type_k", 64, "type_v", 68, "flash_attention", 72, "fit", 76, "fit_min_ctx", 80, "fit_margins_mib", 88, "n_fit_margins_mib", 96,
                   "max_checkpoint_bytes", 104, "max_checkpoints", 112, "mmproj_path", 120,
                   "thread_priority", 128, "rpc_servers", 136, "model_offset", 144, "model_size", 152,
                   "no_repack", 160, "devices", 168);
            Expect(sb, typeof(Request), 280, "raw_prompt", 32, "prompt", 40, "system_prompt", 48, "messages_json", 56, "stop", 64, "n_stop", 72, "priority", 80,
                   "grammar", 88, "json_schema", 96, "tools_json", 104, "tool_choice", 112, "reasoning", 116,
                   "presence_penalty", 120, "frequency_penalty", 124, "penalty_last_n", 128, "dry_multiplier", 132, "dry_base", 136,
                   "dry_allowed_length", 140, "dry_penalty_last_n", 144, "xtc_probability", 148, "xtc_threshold", 152, "typical_p", 156,
                   "top_n_sigma", 160, "mirostat", 164, "mirostat_tau", 168, "mirostat_eta", 172, "n_logprobs", 176,
                   "logit_bias_json", 184, "dry_sequence_breakers", 192, "n_dry_sequence_breakers", 200, "draft_max", 208,
                   "prompt_tokens", 216, "n_prompt_tokens", 224, "suffix", 232, "adaptive_target", 240, "adaptive_decay", 244,
                   "reasoning_budget", 248, "lora_ids", 256, "lora_scales", 264, "n_loras", 272);
            Expect(sb, typeof(Usage), 56, "seed", 20, "prompt_ms", 24, "generation_ms", 32, "dropped_tokens", 40,
                   "drafted_tokens", 44, "accepted_tokens", 48, "image_tokens", 52);
            Expect(sb, typeof(Event), 40, "status", 8, "text", 16, "text_len", 24, "message", 32);
            return sb.ToString();
        }

        static void Expect(StringBuilder sb, Type t, int size, params object[] fieldOffsets)
        {
            int actual = Marshal.SizeOf(t);
            if (actual != size) sb.AppendFormat("sizeof {0} is {1}, C says {2}; ", t.Name, actual, size);
            for (int i = 0; i < fieldOffsets.Length; i += 2)
            {
                string field = (string)fieldOffsets[i];
                int offset = (int)Marshal.OffsetOf(t, field);
                if (offset != (int)fieldOffsets[i + 1])
                    sb.AppendFormat("{0}.{1} at {2}, C says {3}; ", t.Name, field, offset, fieldOffsets[i + 1]);
            }
        }
    }

    public class RigllamaException : Exception
    {
        public Status Status { get; private set; }
        public RigllamaException(Status status, string message) : base(status + ": " + message) { Status = status; }
    }

    // An engine as an IDisposable: Dispose destroys it (cancelling what runs). options (from
    // Engine.DefaultOptions(), then changed) may set on_progress/progress_user_data; its
    // model_path and mmproj_path are set from the strings here, UTF-8, for the call only, and
    // (v0.3) its devices from devices unless that is null.
    public sealed class Engine : IDisposable
    {
        public IntPtr Handle { get; private set; }

        delegate int OptionsCall(ref EngineOptions options, out IntPtr result);

        // call with options whose model_path, mmproj_path and (devices not null) devices are
        // UTF-8 copies of these, freed after (the library copies them); throws if it failed.
        static IntPtr CallWithOptions(string modelPath, EngineOptions options, string mmprojPath, string[] devices,
                                      OptionsCall call)
        {
            IntPtr path = Native.Utf8Alloc(modelPath);
            IntPtr mmproj = Native.Utf8Alloc(mmprojPath);   // null: IntPtr.Zero, none
            IntPtr names = Native.Utf8Alloc(DevicesOption(devices));
            try
            {
                options.model_path = path;
                options.mmproj_path = mmproj;
                if (devices != null) options.devices = names;
                IntPtr result;
                Native.Check(call(ref options, out result));
                return result;
            }
            finally
            {
                Marshal.FreeHGlobal(names);
                Marshal.FreeHGlobal(mmproj);
                Marshal.FreeHGlobal(path);
            }
        }

        // v0.3: devices as the C option: null stays null, an empty array is "none" (the CPU only),
        // else the names joined with commas.
        public static string DevicesOption(string[] devices)
        {
            if (devices == null) return null;
            return devices.Length == 0 ? "none" : string.Join(",", devices);
        }

        // v0.3: the devices the library can use on this machine, the CPU first (always there, named
        // "CPU"); needs no engine. A Name is what devices takes.
        public static Device[] ListDevices()
        {
            IntPtr json;
            Native.Check(Native.rigllama_list_devices(out json));
            var items = Json.Array(Json.Parse(Native.TakeString(json)), "rigllama_list_devices");
            var devices = new Device[items.Count];
            for (int i = 0; i < items.Count; i++) devices[i] = Device.FromJson(items[i]);
            return devices;
        }

        // v0.3: loads ggml's CPU modules (libggml-cpu-*.so, the best this CPU runs is used) from
        // dir instead of the directory librigllama.so was loaded from (or $RIGLLAMA_BACKEND_DIR).
        // Process-wide; call it before the first engine is created. Only a library built with the
        // dynamic-backends feature loads modules: the default build has its CPU code built in and
        // throws RigllamaException (InvalidArgument) saying so, as does a directory without
        // modules, or another directory once they are loaded. CpuBackendVariant() names the code
        // in use.
        public static void SetBackendDir(string dir)
        {
            IntPtr p = Native.Utf8Alloc(dir);   // null: IntPtr.Zero, NullArgument
            try
            {
                Native.Check(Native.rigllama_set_backend_dir(p));
            }
            finally
            {
                Marshal.FreeHGlobal(p);   // the library copied it
            }
        }

        // v0.3: what new Engine(modelPath, options, mmprojPath, devices) would allocate, per
        // device, without loading the weights (llama.cpp reads the file's metadata and plans every
        // buffer), so that a game can pick the largest model that fits. Within 10% of what the
        // engine's Memory() and Devices() report after the real create; a projector's memory is
        // not included. The options are checked as the constructor checks them; fit and
        // rpc_servers are refused (InvalidArgument). Runs on the calling thread, milliseconds to
        // a second.
        public static MemoryEstimate Estimate(string modelPath, EngineOptions options, string mmprojPath = null,
                                              string[] devices = null)
        {
            IntPtr json = CallWithOptions(modelPath, options, mmprojPath, devices, Native.rigllama_estimate);
            return MemoryEstimate.FromJson(Json.Parse(Native.TakeString(json)));
        }

        public static EngineOptions DefaultOptions()
        {
            var options = new EngineOptions();
            Native.Check(Native.rigllama_engine_options_init(ref options, Native.SizeOf<EngineOptions>()));
            return options;
        }

        public Engine(string modelPath) : this(modelPath, DefaultOptions()) { }

        // v0.3: devices: the devices that take the offloaded layers, by the names ListDevices
        // reports ({"Vulkan0"}; "CPU" is the CPU), in that order; an empty array = the CPU only;
        // null (default) = options.devices as it is (IntPtr.Zero: llama.cpp's choice, every GPU,
        // the CPU when a GPU cannot start, GpuFallback() saying why). A name that is not there
        // throws RigllamaException (InvalidArgument) naming it and the devices there are.
        public Engine(string modelPath, EngineOptions options, string mmprojPath = null, string[] devices = null)
        {
            Handle = CallWithOptions(modelPath, options, mmprojPath, devices, Native.rigllama_engine_create);
        }

        public static Request DefaultRequest()
        {
            var request = new Request();
            Native.Check(Native.rigllama_request_init(ref request, Native.SizeOf<Request>()));
            return request;
        }

        // Submit and Complete once the caller's strings and arrays are in request (each caller
        // frees its own after: the library copies them).
        Job SubmitPrepared(ref Request request)
        {
            IntPtr job;
            Native.Check(Native.rigllama_engine_submit(Handle, ref request, out job));
            return new Job(job);
        }

        string CompletePrepared(ref Request request, out Usage usage)
        {
            usage = new Usage();
            Native.Check(Native.rigllama_usage_init(ref usage, Native.SizeOf<Usage>()));
            IntPtr text;
            Native.Check(Native.rigllama_engine_complete(Handle, ref request, out text, ref usage));
            try { return Native.Utf8ReadZ(text); }
            finally { Native.rigllama_string_free(text); }
        }

        // Queues request (from DefaultRequest(), then changed) with prompt as its prompt; returns
        // at once. Poll the job, once per frame if need be.
        public Job Submit(string prompt, Request request)
        {
            request.prompt = Native.Utf8Alloc(prompt);
            try
            {
                return SubmitPrepared(ref request);
            }
            finally
            {
                Marshal.FreeHGlobal(request.prompt);
            }
        }

        // v0.3: Submit with the prompt as token ids (Tokenize) in request.prompt_tokens, sent
        // verbatim: nothing is added (Tokenize's default adds the BOS a raw prompt gets). Leave
        // request.prompt, messages_json and system_prompt unset; raw_prompt does not matter. An id
        // outside the vocabulary throws RigllamaException (InvalidArgument) naming its index and
        // value. Named apart from Submit so that Submit(null, request) stays unambiguous.
        public Job SubmitTokens(int[] promptTokens, Request request)
        {
            request.prompt_tokens = Native.Int32Alloc(promptTokens);
            request.n_prompt_tokens = (UIntPtr)(promptTokens == null ? 0 : promptTokens.Length);
            try
            {
                return SubmitPrepared(ref request);
            }
            finally
            {
                Marshal.FreeHGlobal(request.prompt_tokens);   // the library copied them
            }
        }

        // The whole reply's content.
        public string Complete(string prompt, Request request, out Usage usage)
        {
            request.prompt = Native.Utf8Alloc(prompt);
            try
            {
                return CompletePrepared(ref request, out usage);
            }
            finally
            {
                Marshal.FreeHGlobal(request.prompt);
            }
        }

        // v0.3: Complete with the prompt as token ids (see SubmitTokens).
        public string CompleteTokens(int[] promptTokens, Request request, out Usage usage)
        {
            request.prompt_tokens = Native.Int32Alloc(promptTokens);
            request.n_prompt_tokens = (UIntPtr)(promptTokens == null ? 0 : promptTokens.Length);
            try
            {
                return CompletePrepared(ref request, out usage);
            }
            finally
            {
                Marshal.FreeHGlobal(request.prompt_tokens);
            }
        }

        // v0.3: fill-in-the-middle: Submit with prefix, the text before the gap, as the prompt and
        // suffix, the text after it, in request.suffix (either may be "", not both; set
        // request.raw_prompt = 1). The prompt is laid out with the vocabulary's FIM tokens as
        // llama-server lays out an /infill prompt and the reply is the middle; text that does not
        // fit one batch is cut (usage.dropped_tokens counts the cut). A model whose vocabulary has
        // no FIM tokens throws RigllamaException (InvalidArgument), as does raw_prompt 0.
        public Job SubmitInfill(string prefix, string suffix, Request request)
        {
            request.prompt = Native.Utf8Alloc(prefix);
            request.suffix = Native.Utf8Alloc(suffix);
            try
            {
                return SubmitPrepared(ref request);
            }
            finally
            {
                Marshal.FreeHGlobal(request.suffix);   // the library copied both
                Marshal.FreeHGlobal(request.prompt);
            }
        }

        // v0.3: Complete filling in the middle (see SubmitInfill).
        public string CompleteInfill(string prefix, string suffix, Request request, out Usage usage)
        {
            request.prompt = Native.Utf8Alloc(prefix);
            request.suffix = Native.Utf8Alloc(suffix);
            try
            {
                return CompletePrepared(ref request, out usage);
            }
            finally
            {
                Marshal.FreeHGlobal(request.suffix);
                Marshal.FreeHGlobal(request.prompt);
            }
        }

        // v0.3: CountTokens of the fill-in-the-middle prompt (see SubmitInfill).
        public uint CountInfillTokens(string prefix, string suffix, Request request)
        {
            request.prompt = Native.Utf8Alloc(prefix);
            request.suffix = Native.Utf8Alloc(suffix);
            try
            {
                uint tokens;
                Native.Check(Native.rigllama_engine_count_tokens(Handle, ref request, out tokens));
                return tokens;
            }
            finally
            {
                Marshal.FreeHGlobal(request.suffix);
                Marshal.FreeHGlobal(request.prompt);
            }
        }

        // v0.3: how well each of documents answers query: one score per document, in their order
        // (higher is better; unnormalised, as llama-server's /rerank returns it), from a reranker
        // model (a GGUF with pooling type rank, as bge-reranker's). The chat KV cache is untouched.
        // A model that is not a reranker, an empty query or document, or a pair over 2048 tokens
        // throws RigllamaException (InvalidArgument) naming it (a null one: NullArgument). No
        // documents (or null): an empty array (at most 65,536).
        public float[] Rerank(string query, string[] documents)
        {
            int n = documents == null ? 0 : documents.Length;
            IntPtr q = Native.Utf8Alloc(query);
            var texts = new IntPtr[n];
            try
            {
                for (int i = 0; i < n; i++) texts[i] = Native.Utf8Alloc(documents[i]);
                var scores = new float[n];
                Native.Check(Native.rigllama_engine_rerank(Handle, q, n == 0 ? null : texts, (UIntPtr)n, n == 0 ? null : scores));
                return scores;
            }
            finally
            {
                foreach (IntPtr text in texts) Marshal.FreeHGlobal(text);   // the library copied them
                Marshal.FreeHGlobal(q);
            }
        }

        // The prompt's size in tokens, formatted and tokenized exactly as Complete would, without
        // running it (an image counts as its tokens): compare it with n_ctx to trim history.
        public uint CountTokens(string prompt, Request request)
        {
            request.prompt = Native.Utf8Alloc(prompt);
            try
            {
                uint tokens;
                Native.Check(Native.rigllama_engine_count_tokens(Handle, ref request, out tokens));
                return tokens;
            }
            finally
            {
                Marshal.FreeHGlobal(request.prompt);
            }
        }

        // v0.3: the token ids of text (a NUL character in it throws RigllamaException,
        // InvalidArgument). With TokenizeFlags.RawPrompt, the default, they are what a raw prompt
        // evaluates (as many as CountTokens says), and Detokenize with the same flags gives text
        // back exactly. The first call has room for (UTF-8 bytes) / 2 + 8 ids, enough for most
        // text; when the text makes more, the library says how many and the call is made again
        // with that many.
        public int[] Tokenize(string text, TokenizeFlags flags = TokenizeFlags.RawPrompt)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(text);
            var ids = new int[bytes.Length / 2 + 8];
            while (true)
            {
                UIntPtr needed;
                int status = Native.rigllama_engine_tokenize(Handle, bytes, (UIntPtr)bytes.Length, (uint)flags,
                                                             ids, (UIntPtr)ids.Length, out needed);
                int n = (int)(ulong)needed;
                if (status == (int)Status.Ok)
                {
                    Array.Resize(ref ids, n);
                    return ids;
                }
                // Too small: needed says how many ids the text makes; any other failure leaves it below.
                if (status != (int)Status.InvalidArgument || n <= ids.Length) Native.Check(status);
                ids = new int[n];
            }
        }

        // v0.3: the text of token ids (flags: the inverse of the same flags in Tokenize). Bytes
        // that are not whole characters (ids cut inside one) come out as U+FFFD. An id outside the
        // vocabulary throws RigllamaException (InvalidArgument) naming its index and value.
        public string Detokenize(int[] ids, TokenizeFlags flags = TokenizeFlags.RawPrompt)
        {
            IntPtr text;
            Native.Check(Native.rigllama_engine_detokenize(Handle, ids, (UIntPtr)(ids == null ? 0 : ids.Length), (uint)flags, out text));
            try { return Native.Utf8ReadZ(text); }
            finally { Native.rigllama_string_free(text); }
        }

        // The engine as rigllama_engine_describe's JSON (Json.Parse reads it): the model, n_ctx,
        // n_seq, memory, checkpoints, thread_priority, lora, control_vector, ...; v0.3 devices,
        // gpu_fallback and cpu_backend. rigllama.h lists every member.
        public string Describe()
        {
            IntPtr json;
            Native.Check(Native.rigllama_engine_describe(Handle, out json));
            return Native.TakeString(json);
        }

        // What llama.cpp allocated for the model: Describe's "memory".
        public MemoryUse Memory() { return MemoryUse.FromJson(Json.Member(DescribeObject(), "memory")); }

        // v0.3: every device holding part of the model, the CPU first (for host memory), with the
        // layers and memory there: Describe's "devices".
        public DeviceUse[] Devices() { return DeviceUse.ArrayFromJson(Json.Member(DescribeObject(), "devices")); }

        // v0.3: null, or why the model runs on the CPU although GPU layers were asked for (a GPU
        // backend found no device, or loading onto the GPU failed): Describe's "gpu_fallback".
        public string GpuFallback() { return (string)Json.Member(DescribeObject(), "gpu_fallback"); }

        // v0.3: the CPU code in use, Describe's "cpu_backend"'s "variant": "built-in" in the
        // default build; in a dynamic-backends build the loaded module's instruction-set level
        // ("x64", "haswell", "zen4", ...). Describe's cpu_backend also has "module" (the file)
        // and "features" (the instruction sets it was compiled with).
        public string CpuBackendVariant()
        {
            var cpu = Json.Object(Json.Member(DescribeObject(), "cpu_backend"), "cpu_backend");
            return (string)Json.Member(cpu, "variant");
        }

        Dictionary<string, object> DescribeObject() { return Json.Object(Json.Parse(Describe()), "describe"); }

        public void Cancel() { Native.Check(Native.rigllama_engine_cancel(Handle)); }
        public void Pause() { Native.Check(Native.rigllama_engine_pause(Handle)); }
        public void Resume() { Native.Check(Native.rigllama_engine_resume(Handle)); }
        // Empties the KV cache (after the requests submitted before it), so the next request is
        // evaluated from scratch.
        public void Reset() { Native.Check(Native.rigllama_engine_reset(Handle)); }

        // v0.2: loads the LoRA adapter GGUF at path (made for this engine's model) and applies it
        // at scale (0 = no effect, 1 = as trained) beside any already applied; returns its id, for
        // SetLoraScale, RemoveLora and a request's own LoraSet (see Native.AddLora). Empties the KV
        // cache.
        public uint AddLora(string path, float scale = 1f) { return Native.AddLora(Handle, path, scale); }

        // v0.2: changes an applied adapter's engine-wide scale; empties the KV cache.
        public void SetLoraScale(uint loraId, float scale) { Native.SetLoraScale(Handle, loraId, scale); }

        // v0.2: removes an adapter and frees it; empties the KV cache.
        public void RemoveLora(uint loraId) { Native.RemoveLora(Handle, loraId); }

        // v0.3: steers the model with the control vector GGUF at path times strength on layers
        // layerStart..layerEnd (1-based; 0, 0 = every layer) until ClearControlVector (see
        // Native.SetControlVector). Empties the KV cache.
        public void SetControlVector(string path, float strength = 1f, int layerStart = 0, int layerEnd = 0)
        {
            Native.SetControlVector(Handle, path, strength, layerStart, layerEnd);
        }

        // v0.3: removes the control vector, if one is set; empties the KV cache.
        public void ClearControlVector() { Native.ClearControlVector(Handle); }

        public void Dispose()
        {
            Native.rigllama_engine_destroy(Handle);   // IntPtr.Zero: a no-op
            Handle = IntPtr.Zero;
        }
    }

    // One event of a job, copied out of the library's buffers.
    public struct JobEvent
    {
        public EventKind Kind;
        public Status Status;   // Error: why
        public string Text;     // Text, Reasoning, ToolCall, Logprobs
        public string Message;  // Error
        public bool Final { get { return Kind == EventKind.Done || Kind == EventKind.Error; } }
    }

    // A submitted request as an IDisposable: Dispose frees it (cancelling it if it runs).
    public sealed class Job : IDisposable
    {
        Event ev;

        public IntPtr Handle { get; private set; }

        public Job(IntPtr handle)
        {
            Handle = handle;
            ev = new Event();
            Native.Check(Native.rigllama_event_init(ref ev, Native.SizeOf<Event>()));
        }

        // The next event; Kind None when nothing arrived within timeoutMs (0: never blocks).
        public JobEvent Poll(uint timeoutMs)
        {
            Native.Check(Native.rigllama_job_poll(Handle, timeoutMs, ref ev));
            var result = new JobEvent { Kind = (EventKind)ev.kind, Status = (Status)ev.status, Text = "", Message = "" };
            if (ev.text != IntPtr.Zero) result.Text = Native.Utf8Read(ev.text, (int)(ulong)ev.text_len);
            if (ev.message != IntPtr.Zero) result.Message = Native.Utf8ReadZ(ev.message);
            return result;
        }

        public void Cancel() { Native.Check(Native.rigllama_job_cancel(Handle)); }

        // The usage, once the job has ended.
        public Usage Usage()
        {
            var usage = new Usage();
            Native.Check(Native.rigllama_usage_init(ref usage, Native.SizeOf<Usage>()));
            Native.Check(Native.rigllama_job_usage(Handle, ref usage));
            return usage;
        }

        public void Dispose()
        {
            Native.rigllama_job_free(Handle);   // IntPtr.Zero: a no-op
            Handle = IntPtr.Zero;
        }
    }
}
