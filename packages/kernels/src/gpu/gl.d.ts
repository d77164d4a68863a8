// The `gl` package (headless-gl) ships no types; this is the one function we call.
declare module 'gl' {
  /** A WebGL 1 context of the given size, or null when no GL context can be made (e.g. no X display). */
  export default function createGl(width: number, height: number, options?: object): unknown;
}
