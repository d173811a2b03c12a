include $(sort $(wildcard $(BR2_EXTERNAL_CALLBOX_PATH)/package/*/*.mk))
