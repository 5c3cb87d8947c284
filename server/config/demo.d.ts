/** Types of the shipped demo config module (`demo.js`). */
export declare const TEAMS: Record<number, readonly number[]>;
declare function demoConfig(presence: {
  registerPrefix(
    prefix: string,
    callback: (
      name: string,
    ) => import('../src/core/types.js').ChannelConfigInput | null,
  ): void;
}): void | Promise<void>;
export default demoConfig;
