include $(sort $(wildcard $(BR2_EXTERNAL_TCPCAN_PATH)/package/*/*.mk))
