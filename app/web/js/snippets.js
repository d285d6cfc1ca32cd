// The call the page just made, as code to copy: curl, Python (the openai package) and Node (the
// openai npm package). The key is read from PIXELGATE_API_KEY, never written into the code, and the
// files are named as the user picked them (to be found in the current directory).

// Keyword arguments of the Python SDK's images.edit / images.generate; any other parameter goes in
// extra_body (the Node SDK passes unknown fields through as they are).
const PYTHON_KWARGS = {
  edit: new Set(["background", "input_fidelity", "n", "output_compression", "output_format", "partial_images",
    "quality", "response_format", "size", "user"]),
  generate: new Set(["background", "moderation", "n", "output_compression", "output_format", "partial_images",
    "quality", "response_format", "size", "style", "user"]),
};

/** `text` in single quotes for a POSIX shell. */
export function shellQuote(text) {
  return `'${String(text).replaceAll("'", `'\\''`)}'`;
}

/** A curl -F file reference: quoted when the name holds characters curl's -F syntax reads. */
function curlFile(field, name) {
  const plain = /^[^";,\\]+$/.test(name);
  return shellQuote(`${field}=@${plain ? name : `"${name.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`}`);
}

/** A JSON value as a Python literal. */
export function pythonLiteral(value) {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(pythonLiteral).join(", ")}]`;
  const items = Object.entries(value).map(([key, item]) => `${JSON.stringify(key)}: ${pythonLiteral(item)}`);
  return `{${items.join(", ")}}`;
}

function jsKey(name) {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
}

function extension(call) {
  const format = call.params.find((param) => param.name === "output_format");
  return format && /^[a-z0-9]+$/.test(format.text) ? format.text : "png";
}

/**
 * The curl command. `call`: {base, mode, model, prompt, params: [{name, text, value}], images:
 * [file names], mask: file name or null}.
 */
export function curlSnippet(call) {
  const lines = [
    `curl -sS ${shellQuote(`${call.base}/v1/images/${call.mode === "edit" ? "edits" : "generations"}`)}`,
    `-H "Authorization: Bearer $PIXELGATE_API_KEY"`,
  ];
  if (call.mode === "edit") {
    lines.push(`--form-string ${shellQuote(`model=${call.model}`)}`);
    const field = call.images.length > 1 ? "image[]" : "image";
    for (const name of call.images) lines.push(`-F ${curlFile(field, name)}`);
    if (call.mask) lines.push(`-F ${curlFile("mask", call.mask)}`);
    lines.push(`--form-string ${shellQuote(`prompt=${call.prompt}`)}`);
    for (const param of call.params) lines.push(`--form-string ${shellQuote(`${param.name}=${param.text}`)}`);
  } else {
    const body = { model: call.model, prompt: call.prompt };
    for (const param of call.params) body[param.name] = param.value;
    lines.push(`-H "Content-Type: application/json"`);
    lines.push(`-d ${shellQuote(JSON.stringify(body, null, 2))}`);
  }
  return lines.join(" \\\n  ") + "\n";
}

/** The same call with the openai Python package. */
export function pythonSnippet(call) {
  const args = [`model=${pythonLiteral(call.model)}`];
  if (call.mode === "edit") {
    const files = call.images.map((name) => `open(${pythonLiteral(name)}, "rb")`);
    args.push(`image=${files.length === 1 ? files[0] : `[${files.join(", ")}]`}`);
    if (call.mask) args.push(`mask=open(${pythonLiteral(call.mask)}, "rb")`);
  }
  args.push(`prompt=${pythonLiteral(call.prompt)}`);
  const extra = [];
  for (const param of call.params) {
    if (PYTHON_KWARGS[call.mode].has(param.name)) args.push(`${param.name}=${pythonLiteral(param.value)}`);
    else extra.push(`${JSON.stringify(param.name)}: ${pythonLiteral(param.value)}`);
  }
  if (extra.length) args.push(`extra_body={${extra.join(", ")}}`);
  return [
    "import base64",
    "import os",
    "",
    "from openai import OpenAI",
    "",
    "client = OpenAI(",
    `    base_url=${pythonLiteral(`${call.base}/v1`)},`,
    `    api_key=os.environ.get("PIXELGATE_API_KEY", "none"),`,
    ")",
    `result = client.images.${call.mode}(`,
    ...args.map((arg) => `    ${arg},`),
    ")",
    "for index, image in enumerate(result.data):",
    "    if image.b64_json:",
    `        name = f"result-{index}.${extension(call)}"`,
    `        with open(name, "wb") as out:`,
    "            out.write(base64.b64decode(image.b64_json))",
    "        print(name)",
    "    else:",
    "        print(image.url)",
    "",
  ].join("\n");
}

/** The same call with the openai npm package (an ES module: `node call.mjs`). */
export function nodeSnippet(call) {
  const fields = [`model: ${JSON.stringify(call.model)}`];
  if (call.mode === "edit") {
    const files = call.images.map((name) => `fs.createReadStream(${JSON.stringify(name)})`);
    fields.push(`image: ${files.length === 1 ? files[0] : `[${files.join(", ")}]`}`);
    if (call.mask) fields.push(`mask: fs.createReadStream(${JSON.stringify(call.mask)})`);
  }
  fields.push(`prompt: ${JSON.stringify(call.prompt)}`);
  for (const param of call.params) fields.push(`${jsKey(param.name)}: ${JSON.stringify(param.value)}`);
  return [
    `import fs from "node:fs";`,
    `import OpenAI from "openai";`,
    "",
    "const client = new OpenAI({",
    `  baseURL: ${JSON.stringify(`${call.base}/v1`)},`,
    `  apiKey: process.env.PIXELGATE_API_KEY ?? "none",`,
    "});",
    `const result = await client.images.${call.mode}({`,
    ...fields.map((field) => `  ${field},`),
    "});",
    "result.data.forEach((image, index) => {",
    "  if (image.b64_json) {",
    `    const name = \`result-\${index}.${extension(call)}\`;`,
    `    fs.writeFileSync(name, Buffer.from(image.b64_json, "base64"));`,
    "    console.log(name);",
    "  } else {",
    "    console.log(image.url);",
    "  }",
    "});",
    "",
  ].join("\n");
}

export const SNIPPETS = { curl: curlSnippet, python: pythonSnippet, node: nodeSnippet };
