// The part of hpack.js (no types of its own) that first-request.ts and its tests use: a
// decompressor takes header-block bytes and yields the decoded header fields; a compressor the reverse.
declare module "hpack.js" {
  interface HeaderField {
    name: string;
    value: string;
    neverIndex: boolean;
  }
  interface Decompressor {
    write(chunk: Buffer): boolean;
    execute(): void;
    read(): HeaderField | null;
    on(event: "error", listener: (err: Error) => void): this;
  }
  interface Compressor {
    write(headers: { name: string; value: string }[]): boolean;
    read(): Buffer | null;
  }
  const hpack: {
    decompressor: { create(options: { table: { size: number } }): Decompressor };
    /** Used by the tests to write header blocks as clients do. */
    compressor: { create(options: { table: { size: number } }): Compressor };
  };
  export default hpack;
}
