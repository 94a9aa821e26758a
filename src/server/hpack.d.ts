// The part of hpack.js (no types of its own) that first-request.ts uses: a decompressor is a
// stream that takes header-block bytes and yields the decoded header fields.
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
  const hpack: {
    decompressor: { create(options: { table: { size: number } }): Decompressor };
  };
  export default hpack;
}
